package demo

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/lethe-dev/lethe/internal/servers"
)

// proc is a process as /proc shows it. start (clock ticks after boot) tells
// a process from a later one that reuses its pid.
type proc struct {
	PID, PPID int
	Start     uint64
	Cmd       string
}

func (p proc) String() string { return fmt.Sprintf("%d %s", p.PID, p.Cmd) }

// readProc reads /proc/<pid>; ok is false when the process is gone or a
// zombie.
func readProc(pid int) (proc, bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return proc{}, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return proc{}, false
	}
	f := strings.Fields(s[i+1:]) // state ppid pgrp ... ; starttime is field 22 of the line
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return proc{}, false
	}
	ppid, _ := strconv.Atoi(f[1])
	start, _ := strconv.ParseUint(f[19], 10, 64)
	cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	c := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
	if len(c) > 160 {
		c = c[:160] + "…"
	}
	return proc{PID: pid, PPID: ppid, Start: start, Cmd: c}, true
}

// descendants lists the living descendants of pid.
func descendants(pid int) []proc {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]proc{}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p, ok := readProc(n); ok {
			children[p.PPID] = append(children[p.PPID], p)
		}
	}
	var out []proc
	var walk func(int)
	walk = func(parent int) {
		for _, c := range children[parent] {
			out = append(out, c)
			walk(c.PID)
		}
	}
	walk(pid)
	return out
}

// stillRunning returns the processes of ps that still run (same pid, same
// start time).
func stillRunning(ps []proc) []proc {
	var out []proc
	for _, p := range ps {
		if q, ok := readProc(p.PID); ok && q.Start == p.Start {
			out = append(out, q)
		}
	}
	return out
}

// The run directory is <tmp>/lethe-demo-<pid>-<random>. A demo that is
// killed (SIGKILL, so it cannot clean up) leaves it behind together with the
// control plane, whose kube-apiserver and etcd do not die with their parent.
// Each run records its processes and envtest's directories in the run
// directory; the next run stops those processes and removes the directories.
const (
	runDirPrefix = "lethe-demo-"
	recordFile   = "processes"
)

// record writes the run's processes and the directories envtest created
// (named in their command lines) into the run directory.
func record(dir string, ps []proc) error {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "proc %d %d\n", p.PID, p.Start)
		args, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.PID))
		for _, a := range strings.Split(string(args), "\x00") {
			for _, flag := range []string{"--cert-dir=", "--data-dir="} {
				if v, ok := strings.CutPrefix(a, flag); ok && strings.HasPrefix(filepath.Base(v), "k8s_test_framework_") {
					fmt.Fprintf(&b, "dir %s\n", v)
				}
			}
		}
	}
	return os.WriteFile(filepath.Join(dir, recordFile), []byte(b.String()), 0o600)
}

// sweepStale cleans up after demo runs that died without doing it
// themselves: their processes are killed and their directories removed.
// It returns what it did, for a progress line.
func sweepStale(parent string) (killed, removed int) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return 0, 0
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), runDirPrefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue // its demo still runs
		}
		dir := filepath.Join(parent, e.Name())
		if f, err := os.Open(filepath.Join(dir, recordFile)); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				fields := strings.Fields(sc.Text())
				switch {
				case len(fields) == 3 && fields[0] == "proc":
					p, _ := strconv.Atoi(fields[1])
					start, _ := strconv.ParseUint(fields[2], 10, 64)
					if q, ok := readProc(p); ok && q.Start == start {
						_ = syscall.Kill(p, syscall.SIGKILL)
						killed++
					}
				case len(fields) == 2 && fields[0] == "dir" && strings.HasPrefix(filepath.Base(fields[1]), "k8s_test_framework_"):
					_ = os.RemoveAll(fields[1])
				}
			}
			f.Close()
		}
		servers.ReleaseSharedMemory(dir)
		if os.RemoveAll(dir) == nil {
			removed++
		}
	}
	return killed, removed
}
