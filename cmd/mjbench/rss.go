package main

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// memSample is the memory of a process tree: the sum over its processes of
// VmRSS (/proc/PID/status; shared pages count once per process) and of Pss
// (/proc/PID/smaps_rollup; shared pages divided among their users).
type memSample struct {
	RSSKB, PSSKB int64
	Procs        int
}

// parseStatPPID returns the parent pid from the text of /proc/PID/stat
// (the command name may hold spaces and parentheses).
func parseStatPPID(stat string) (int, bool) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}

// parseKB returns the value in kB of the "key:   123 kB" line of a
// /proc status or smaps_rollup text, 0 when absent.
func parseKB(text, key string) int64 {
	for line := range strings.SplitSeq(text, "\n") {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		return n
	}
	return 0
}

// descendants lists root and every process below it, given a pid→ppid map.
func descendants(root int, parent map[int]int) []int {
	children := map[int][]int{}
	for pid, pp := range parent {
		children[pp] = append(children[pp], pid)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// readStats returns the text of /proc/PID/stat of every process.
func readStats() map[int]string {
	ents, _ := os.ReadDir("/proc")
	stats := map[int]string{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/stat"); err == nil {
			stats[pid] = string(b)
		}
	}
	return stats
}

// treeOf is root and its descendants among stats.
func treeOf(root int, stats map[int]string) []int {
	parent := map[int]int{}
	for pid, st := range stats {
		if pp, ok := parseStatPPID(st); ok {
			parent[pid] = pp
		}
	}
	return descendants(root, parent)
}

// processTree is root and its descendants, from /proc.
func processTree(root int) []int { return treeOf(root, readStats()) }

// statCPUTicks is utime+stime+cutime+cstime from a /proc/PID/stat text:
// the CPU time of the process and of its children it has reaped.
func statCPUTicks(stat string) int64 {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 15 {
		return 0
	}
	var sum int64
	for _, s := range f[11:15] {
		n, _ := strconv.ParseInt(s, 10, 64)
		sum += n
	}
	return sum
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times (100 on Linux).
const clockTicks = 100

// treeCPU is the CPU time used so far by root's process tree. A process
// that exits is counted in its parent's cutime/cstime once reaped, so the
// difference of two readings is the tree's CPU time in between, Postfix's
// short-lived smtpd and cleanup processes included.
func treeCPU(root int) time.Duration {
	stats := readStats()
	var ticks int64
	for _, pid := range treeOf(root, stats) {
		ticks += statCPUTicks(stats[pid])
	}
	return time.Duration(ticks) * time.Second / clockTicks
}

// sampleTree measures root's process tree now.
func sampleTree(root int, withPSS bool) memSample {
	var m memSample
	for _, pid := range processTree(root) {
		p := "/proc/" + strconv.Itoa(pid)
		b, err := os.ReadFile(p + "/status")
		if err != nil {
			continue
		}
		m.Procs++
		m.RSSKB += parseKB(string(b), "VmRSS")
		if withPSS {
			if b, err := os.ReadFile(p + "/smaps_rollup"); err == nil {
				m.PSSKB += parseKB(string(b), "Pss")
			}
		}
	}
	return m
}

// sampler records the peak memory of a process tree until stopped.
type sampler struct {
	base, peak memSample
	quit       chan struct{}
	wg         sync.WaitGroup
}

func startSampler(root int, every time.Duration, withPSS bool) *sampler {
	s := &sampler{quit: make(chan struct{})}
	s.base = sampleTree(root, withPSS)
	s.peak = s.base
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-t.C:
				s.peak = peakOf(s.peak, sampleTree(root, withPSS))
			}
		}
	}()
	return s
}

// stop ends sampling (with one last sample) and returns the first sample
// and the peak.
func (s *sampler) stop() (base, peak memSample) {
	close(s.quit)
	s.wg.Wait()
	return s.base, s.peak
}

// peakOf keeps the larger RSS (with its process count) and the larger PSS.
func peakOf(a, b memSample) memSample {
	out := a
	if b.RSSKB > a.RSSKB {
		out.RSSKB, out.Procs = b.RSSKB, b.Procs
	}
	out.PSSKB = max(a.PSSKB, b.PSSKB)
	return out
}

// mb converts kB to MiB with three decimals.
func mb(kb int64) float64 { return round3(float64(kb) / 1024) }
