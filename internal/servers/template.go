package servers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Initialising a data directory (initdb, mariadb-install-db) costs a second
// or more of CPU, several on a loaded machine. The first process that
// initialises one copies the pristine result into the user's cache, keyed by
// the server binaries, and later processes copy that instead:
//
//	${XDG_CACHE_HOME:-$HOME/.cache}/lethe/servers/<kind>-<key>/
//
// Caching is best effort: any error falls back to initialising afresh.

// templateFormat changes whenever what this package puts in a template
// (users, passwords, options) changes, so old templates are not reused.
const templateFormat = "1"

// templateKey identifies a template by the binaries that made it (path,
// size, modification time), so an upgraded package gets a new one.
func templateKey(binaries ...string) string {
	h := sha256.New()
	fmt.Fprintf(h, "format %s euid %d\n", templateFormat, os.Geteuid())
	for _, b := range binaries {
		fi, err := os.Stat(b)
		if err != nil {
			return ""
		}
		fmt.Fprintf(h, "%s %d %d\n", b, fi.Size(), fi.ModTime().UnixNano())
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func templateRoot() string {
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "lethe", "servers")
}

// fromTemplate copies the cached template of kind and key into dst (which
// must not exist), owned by cred when given. It reports whether it did.
func fromTemplate(kind, key, dst string, cred *syscall.Credential) bool {
	root := templateRoot()
	if root == "" || key == "" {
		return false
	}
	src := filepath.Join(root, kind+"-"+key)
	if _, err := os.Stat(filepath.Join(src, ".complete")); err != nil {
		return false
	}
	if err := copyTree(filepath.Join(src, "data"), dst, cred); err != nil {
		_ = os.RemoveAll(dst)
		return false
	}
	return true
}

// saveTemplate copies a freshly initialised, never started data directory
// into the cache (atomically: a concurrent process either sees all of it or
// nothing) and removes templates of kind made by other binaries.
func saveTemplate(kind, key, data string) {
	root := templateRoot()
	if root == "" || key == "" {
		return
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return
	}
	final := filepath.Join(root, kind+"-"+key)
	if _, err := os.Stat(final); err == nil {
		return
	}
	tmp, err := os.MkdirTemp(root, ".tmp-"+kind+"-")
	if err != nil {
		return
	}
	if err := copyTree(data, filepath.Join(tmp, "data"), nil); err != nil {
		_ = os.RemoveAll(tmp)
		return
	}
	if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
		_ = os.RemoveAll(tmp)
		return
	}
	if err := os.Rename(tmp, final); err != nil { // another process was faster
		_ = os.RemoveAll(tmp)
		return
	}
	old, _ := filepath.Glob(filepath.Join(root, kind+"-*"))
	for _, o := range old {
		if o != final {
			_ = os.RemoveAll(o)
		}
	}
}

// copyTree copies a directory of directories and regular files, keeping
// permission bits, and hands everything to cred's user when given.
func copyTree(src, dst string, cred *syscall.Credential) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, 0o700); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(path, target); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a regular file or directory", path)
		}
		if err := os.Chmod(target, info.Mode().Perm()); err != nil {
			return err
		}
		if cred != nil {
			return os.Lchown(target, int(cred.Uid), int(cred.Gid))
		}
		return nil
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil { // copy_file_range on Linux
		_ = out.Close()
		return err
	}
	return out.Close()
}

// sqlQuote quotes s as an SQL string literal (for the passwords the harness
// generates itself, which are hex anyway).
func sqlQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
