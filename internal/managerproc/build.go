package managerproc

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/lethe-dev/lethe/internal/servers"
)

var built struct {
	once sync.Once
	path string
	err  error
}

// Build builds the manager from the repository the working directory is in
// (go build -o bin/managerproc/manager .) and returns the binary's path. It
// builds once per process; later calls return the first outcome.
func Build(ctx context.Context) (string, error) {
	built.once.Do(func() { built.path, built.err = build(ctx) })
	return built.path, built.err
}

func build(ctx context.Context) (string, error) {
	root, err := servers.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("building the manager: %w", err)
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("building the manager: go is not in PATH: %w", err)
	}
	dir := filepath.Join(root, "bin", "managerproc")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	// Test processes of several packages start at once; one builds, the
	// others find the binary up to date.
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()

	bin := filepath.Join(dir, "manager")
	cmd := exec.CommandContext(ctx, goBin, "build", "-o", bin, ".")
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("go build -o %s . (in %s): %w\n%s", bin, root, err, strings.TrimSpace(out.String()))
	}
	return bin, nil
}
