package datastore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
)

// Code is what a driver's table says of one server error code: its kind
// and a short, value-free reason.
type Code struct {
	Kind   Kind
	Reason string
}

// Rule classifies the errors of a client library that are not the
// server's: those Match accepts are Kind, with Reason. Detail, when set,
// gives the Error's Detail.
type Rule struct {
	Match  func(error) bool
	Kind   Kind
	Reason string
	Detail func(error) string
}

// Library is what Classify needs to know of one SQL driver's client
// library.
type Library struct {
	// Name starts every message ("postgres", "mysql").
	Name string
	// Server recognises an error the server sent: the returned Error has
	// Kind, Reason and the server's codes filled in from the driver's code
	// table; Classify fills in the rest.
	Server func(error) (*Error, bool)
	// Rules classify every other error, the first that matches wins.
	// An error no rule matches is KindClient.
	Rules []Rule
}

// Classify turns an error of the library into an *Error for operation op.
// An *Error is returned as it is. Context cancellation by the caller and a
// network policy refusal are wrapped with the operation and nothing else:
// the first is neither the store's fault nor a reason to back off, the
// second has its own message (NotAllowedError).
func (l *Library) Classify(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %s: %w", l.Name, op, err)
	}
	if na := AsNotAllowed(err); na != nil {
		// Without the library's own error, whose text may name the user.
		return fmt.Errorf("%s: %s: %w", l.Name, op, na)
	}
	if se, ok := l.Server(err); ok {
		se.Driver, se.Op, se.Err = l.Name, op, err
		return se
	}
	for _, r := range l.Rules {
		if r.Match(err) {
			e := &Error{Driver: l.Name, Op: op, Kind: r.Kind, Reason: r.Reason, Err: err}
			if r.Detail != nil {
				e.Detail = r.Detail(err)
			}
			return e
		}
	}
	// Neither the server nor recognisably the network: most likely a value
	// the library could not convert, which retrying does not fix. Libraries
	// quote the value in such messages, so only the Go type is named.
	return &Error{Driver: l.Name, Op: op, Kind: KindClient, Reason: fmt.Sprintf("client error (%T)", err), Err: err}
}

// IsAny matches errors that are (or wrap) one of targets.
func IsAny(targets ...error) func(error) bool {
	return func(err error) bool {
		for _, t := range targets {
			if errors.Is(err, t) {
				return true
			}
		}
		return false
	}
}

// Rules shared by the SQL drivers, each with the library's own errors of
// the same meaning.

// TimedOut: the caller's deadline passed, or also says so.
func TimedOut(also ...func(error) bool) Rule {
	return Rule{Kind: KindTimeout, Reason: "timed out", Match: func(err error) bool {
		return errors.Is(err, context.DeadlineExceeded) || anyOf(also, err)
	}}
}

// Refused: the server refused the connection.
func Refused(detail func(error) string) Rule {
	return Rule{Kind: KindConnection, Reason: "connection refused", Detail: detail, Match: IsAny(syscall.ECONNREFUSED)}
}

// Lost: the connection was closed under the driver (or one of also).
func Lost(also ...error) Rule {
	return Rule{Kind: KindConnection, Reason: "connection lost",
		Match: IsAny(append([]error{syscall.ECONNRESET, io.EOF, io.ErrUnexpectedEOF}, also...)...)}
}

// LookupFailed: the host name did not resolve.
func LookupFailed() Rule {
	return Rule{Kind: KindConnection, Reason: "host name lookup failed", Match: func(err error) bool {
		var de *net.DNSError
		return errors.As(err, &de)
	}}
}

// ConnectFailed: any other network error (a net.Error, or one of also).
func ConnectFailed(detail func(error) string, also ...func(error) bool) Rule {
	return Rule{Kind: KindConnection, Reason: "connection failed", Detail: detail, Match: func(err error) bool {
		var ne net.Error
		return errors.As(err, &ne) || anyOf(also, err)
	}}
}

func anyOf(fs []func(error) bool, err error) bool {
	for _, f := range fs {
		if f(err) {
			return true
		}
	}
	return false
}
