package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100 on
// every Linux architecture Tributary runs on.
const userHZ = 100

// procSample is a process's CPU time and resident memory at one moment.
type procSample struct {
	cpu time.Duration // user + system, all threads
	rss int64         // bytes: the proportional set size (Pss)
}

// readProc reads /proc/<pid>/stat and /proc/<pid>/status.
func readProc(pid int) (procSample, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procSample{}, err
	}
	// the command name, field 2, is in parentheses and may hold spaces
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procSample{}, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15
	if len(f) < 13 {
		return procSample{}, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return procSample{}, fmt.Errorf("/proc/%d/stat: bad utime or stime", pid)
	}
	s := procSample{cpu: time.Duration(ut+st) * time.Second / userHZ}
	// Pss (proportional set size) rather than RSS: the pages a process
	// shares with others (libraries of N ffmpeg processes) count once in
	// all, not once per process
	rollup, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return procSample{}, err
	}
	for line := range strings.SplitSeq(string(rollup), "\n") {
		if v, ok := strings.CutPrefix(line, "Pss:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return procSample{}, fmt.Errorf("/proc/%d/smaps_rollup: Pss %q", pid, v)
			}
			s.rss = kb << 10
		}
	}
	return s, nil
}

// readProcs sums the samples of several processes.
func readProcs(pids []int) (procSample, error) {
	var total procSample
	for _, pid := range pids {
		s, err := readProc(pid)
		if err != nil {
			return procSample{}, err
		}
		total.cpu += s.cpu
		total.rss += s.rss
	}
	return total, nil
}

// cpuModel returns the CPU's model name from /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
