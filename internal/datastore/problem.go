package datastore

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// ConnectionProblem says what went wrong with a connection or a request, in
// fixed words of Lethe's own chosen by the error's class and Go type, never
// by its text: a server's greeting or error can end up in a client
// library's error message, and a status shown to a namespace user must not
// reflect what a server at an arbitrary address sent (whoever controls the
// DataStore's host would otherwise read other services' answers through
// Lethe).
func ConnectionProblem(err error) string {
	var dns *net.DNSError
	var ne net.Error
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrNotAllowed):
		return "the address is not allowed by the manager's network policy"
	case TLSVerificationProblem(err) != "":
		return "the server's certificate was refused: " + TLSVerificationProblem(err)
	case errors.Is(err, ErrAuthentication):
		return "the server refused the credentials"
	case errors.As(err, &dns) && dns.IsNotFound:
		return "the host name does not resolve"
	case errors.As(err, &dns):
		return "the host name could not be resolved"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timed out"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "the connection was refused"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "the host is unreachable"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.EPIPE):
		return "the server closed the connection"
	case errors.Is(err, ErrUnavailable):
		return "the server is unavailable or did not answer as expected"
	case errors.Is(err, ErrNotFound):
		return "the database, logical database or bucket does not exist"
	case errors.Is(err, ErrInvalid):
		return "the server's answer could not be used (not a server of this type, or it refused the request)"
	}
	return "the connection failed"
}
