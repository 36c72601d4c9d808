package servers

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// SweepStale removes the directories <parent>/<prefix><pid>-* that processes
// which died without cleaning up (killed by go test -timeout, say) left
// behind. Only directories of this user whose process no longer exists are
// removed, each after ReleaseSharedMemory.
func SweepStale(parent, prefix string) {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.IsDir() {
			continue
		}
		pidStr, _, ok := strings.Cut(rest, "-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			continue
		}
		stale := filepath.Join(parent, e.Name())
		ReleaseSharedMemory(stale)
		_ = os.RemoveAll(stale)
	}
}

// ReleaseSharedMemory removes the small System V shared memory segment of
// each PostgreSQL server of a Group directory that was SIGKILLed (its
// postmaster.pid names it), which would otherwise stay until reboot.
func ReleaseSharedMemory(dir string) {
	pidFiles, _ := filepath.Glob(filepath.Join(dir, "postgres-*", "data", "postmaster.pid"))
	for _, pf := range pidFiles {
		b, err := os.ReadFile(pf)
		if err != nil {
			continue
		}
		lines := strings.Split(string(b), "\n")
		if len(lines) < 7 {
			continue
		}
		f := strings.Fields(lines[6]) // "shmkey shmid"
		if len(f) != 2 {
			continue
		}
		key, err1 := strconv.ParseInt(f[0], 10, 64)
		id, err2 := strconv.Atoi(f[1])
		if err1 != nil || err2 != nil {
			continue
		}
		var desc unix.SysvShmDesc
		if _, err := unix.SysvShmCtl(id, unix.IPC_STAT, &desc); err != nil || int64(desc.Perm.Key) != key {
			continue // gone already, or the id now belongs to someone else
		}
		_, _ = unix.SysvShmCtl(id, unix.IPC_RMID, nil)
	}
}
