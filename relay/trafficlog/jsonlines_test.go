package trafficlog_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mjrelay/mjrelay/relay/trafficlog"
)

// TestTwoWritersOneFile: the two processes of a handover append to the
// same traffic log for a moment; every line in it is a whole event.
// Lines of all sizes, some longer than the writer's buffer.
func TestTwoWritersOneFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "traffic.log")
	var wg sync.WaitGroup
	const perWriter = 400
	for w := 0; w < 2; w++ {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		j := trafficlog.NewJSONLines(f)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer j.Close()
			for i := 0; i < perWriter; i++ {
				e := env
				e.ID = fmt.Sprintf("w%d-%d", w, i)
				e.To = make([]string, 1+(i*37)%900)
				for k := range e.To {
					e.To[k] = fmt.Sprintf("recipient-%d@client.example", k)
				}
				j.Record(trafficlog.NewReceived(e, true, "", nil))
			}
		}()
	}
	wg.Wait()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n := 0
	for sc.Scan() {
		var e struct{ ID string }
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.ID == "" {
			t.Fatalf("line %d is not a whole event (%v): %.80s…", n+1, err, sc.Text())
		}
		n++
	}
	if n != 2*perWriter {
		t.Errorf("%d lines, want %d", n, 2*perWriter)
	}
}
