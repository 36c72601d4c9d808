package servers

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
)

// MissingError is a server whose software is not installed.
type MissingError struct {
	What    string // the binaries: "initdb/postgres"
	Where   string // where they were looked for
	Install string // the command that installs them
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s not found in %s; install it with: %s", e.What, e.Where, e.Install)
}

// startError is a failed start, with the server's log tail.
type startError struct {
	what    string
	err     error
	logPath string
}

func (e *startError) Error() string {
	msg := e.what
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	if e.logPath != "" {
		msg += "\n--- last lines of " + e.logPath + " ---\n" + LogTail(e.logPath, 30)
	}
	return msg
}

func (e *startError) Unwrap() error { return e.err }

// portInUse reports whether a start failed because its port was taken.
func (e *startError) portInUse() bool {
	return strings.Contains(strings.ToLower(LogTail(e.logPath, 50)), "address already in use")
}

// startWithRetry runs start with fresh free ports until it succeeds or fails
// for a reason other than a port collision.
func startWithRetry[T any](start func(port int) (T, error)) (T, error) {
	var zero T
	var err error
	for range startAttempts {
		var port int
		port, err = FreePort()
		if err != nil {
			return zero, err
		}
		var v T
		v, err = start(port)
		if err == nil {
			return v, nil
		}
		var se *startError
		if !errors.As(err, &se) || !se.portInUse() {
			return zero, err
		}
	}
	return zero, err
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// LogTail returns the last n lines of a file (of a server's log, say).
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read log: %v)", err)
	}
	return Tail(string(b), n)
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
