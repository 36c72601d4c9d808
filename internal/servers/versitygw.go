package servers

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// versitygwBinary returns bin/versitygw of the repository, and its version,
// when it is the version pinned in hack/tools/versitygw/go.mod; else it
// builds it with hack/build-versitygw.sh (once, cached; a file lock keeps
// parallel processes from building it twice). Outside the repository it
// falls back to versitygw in PATH.
func versitygwBinary(ctx context.Context, o S3Options, logPath string) (path, version string, err error) {
	root := o.RepoRoot
	if root == "" {
		if root, err = RepoRoot(); err != nil {
			if p, lerr := exec.LookPath("versitygw"); lerr == nil {
				return p, versionOf(p), nil
			}
			return "", "", &MissingError{What: "versitygw", Where: fmt.Sprintf("PATH (and the repository, which builds it, was not found: %v)", err),
				Install: "hack/build-versitygw.sh of the repository"}
		}
	}
	script := filepath.Join(root, "hack", "build-versitygw.sh")
	if _, err := os.Stat(script); err != nil {
		return "", "", &MissingError{What: "hack/build-versitygw.sh", Where: root, Install: "a checkout that has it"}
	}
	version, err = pinnedVersitygw(root)
	if err != nil {
		return "", "", err
	}
	link := filepath.Join(root, "bin", "versitygw")
	if linkedVersion(link, version) {
		return link, version, nil
	}

	cacheDir, err := os.UserCacheDir()
	if err != nil {
		return "", "", err
	}
	lockDir := filepath.Join(cacheDir, "lethe")
	if err := os.MkdirAll(lockDir, 0o755); err != nil {
		return "", "", err
	}
	lock, err := os.OpenFile(filepath.Join(lockDir, ".testharness-versitygw.lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", "", fmt.Errorf("locking %s: %w", lock.Name(), err)
	}
	defer func() { _ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) }()
	// Another process may have built it while we waited for the lock.
	if linkedVersion(link, version) {
		return link, version, nil
	}

	if o.Building != nil {
		o.Building(version)
	}
	cmd := exec.CommandContext(ctx, script)
	cmd.Dir = root
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := runLogged("hack/build-versitygw.sh", cmd, logPath); err != nil {
		return "", "", fmt.Errorf("building versitygw (run %s to see why; it needs go and the module proxy): %w", script, err)
	}
	path = lastLine(out.String())
	if path == "" {
		path = link
	}
	if !isExecutable(path) {
		return "", "", fmt.Errorf("%s printed %q, which is not an executable", script, path)
	}
	return path, version, nil
}

// linkedVersion reports whether link resolves to an executable in the cache
// directory of version (…/versitygw-<version>/versitygw).
func linkedVersion(link, version string) bool {
	real, err := filepath.EvalSymlinks(link)
	if err != nil || !isExecutable(real) {
		return false
	}
	return filepath.Base(filepath.Dir(real)) == "versitygw-"+version
}

// pinnedVersitygw reads the versitygw version from the tools module.
func pinnedVersitygw(root string) (string, error) {
	gomod := filepath.Join(root, "hack", "tools", "versitygw", "go.mod")
	f, err := os.Open(gomod)
	if err != nil {
		return "", err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 && fields[0] == "require" {
			fields = fields[1:]
		}
		if len(fields) >= 2 && fields[0] == "github.com/versity/versitygw" {
			return fields[1], nil
		}
	}
	return "", fmt.Errorf("%s does not require github.com/versity/versitygw", gomod)
}
