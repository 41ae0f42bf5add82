// Package conformancetest is the frame the conformance suites
// (queue/queuetest, store/storetest) share: the harness through which a
// backend gives a suite its instances (a queue, a store), the instances a
// suite opens, restarts and crashes, and the run of a suite's named cases.
package conformancetest

import (
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

// Harness gives a suite instances (B) of one backend, opened with options
// O. A place is where an instance keeps its data (a directory, a database
// schema…): the suite passes it back and never looks inside. The harness
// sets places up and removes them when the test ends; the suite closes
// every instance it opened then, whether or not it closed it already (a
// second Close must do no harm).
type Harness[B io.Closer, O any] struct {
	// Place returns a new, empty place.
	Place func(t *testing.T) string
	// Open opens the instance at place with options o.
	Open func(t *testing.T, place string, o O) B
	// Crash returns the place the next start would find if the process
	// with an instance at place open died at this instant: place itself,
	// or a copy of what it holds now. That instance is not closed; others
	// may be writing to it while Crash runs, and once it returns the
	// suite lets them end and uses it no more.
	Crash func(t *testing.T, place string) string
}

// Instance is an instance a suite opened, with what it takes to open it
// again.
type Instance[B io.Closer, O any] struct {
	B     B
	h     Harness[B, O]
	place string
	o     O
}

// New opens an instance at a new, empty place.
func New[B io.Closer, O any](t *testing.T, h Harness[B, O], o O) Instance[B, O] {
	t.Helper()
	return open(t, h, h.Place(t), o)
}

// open opens the instance at place, to be closed when the test ends.
func open[B io.Closer, O any](t *testing.T, h Harness[B, O], place string, o O) Instance[B, O] {
	t.Helper()
	b := h.Open(t, place, o)
	t.Cleanup(func() { b.Close() })
	return Instance[B, O]{b, h, place, o}
}

// Restart closes the instance and opens it again.
func (i Instance[B, O]) Restart(t *testing.T) Instance[B, O] {
	t.Helper()
	if err := i.B.Close(); err != nil {
		t.Fatal(err)
	}
	return open(t, i.h, i.place, i.o)
}

// Crash opens the instance again as the next start after the process died
// now would.
func (i Instance[B, O]) Crash(t *testing.T) Instance[B, O] {
	t.Helper()
	return open(t, i.h, i.h.Crash(t, i.place), i.o)
}

// Run runs each case against h as a subtest named after the case's
// function without its "test" prefix (testPutGet: PutGet).
func Run[H any](t *testing.T, h H, cases ...func(*testing.T, H)) {
	for _, c := range cases {
		name := runtime.FuncForPC(reflect.ValueOf(c).Pointer()).Name()
		name = strings.TrimPrefix(name[strings.LastIndexByte(name, '.')+1:], "test")
		t.Run(name, func(t *testing.T) { c(t, h) })
	}
}
