package mysql

import (
	"crypto/x509"
	"database/sql/driver"
	"errors"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/lethe-dev/lethe/internal/datastore"
)

// library is go-sql-driver as datastore.Library.Classify needs to know it.
// The message names the server's error number and SQLSTATE, never the
// server's message: MySQL's own messages quote row values and subject
// identifiers (Duplicate entry '…', Incorrect datetime value: '…').
var library = datastore.Library{
	Name: "mysql",
	Server: func(err error) (*datastore.Error, bool) {
		var me *gomysql.MySQLError
		if !errors.As(err, &me) {
			return nil, false
		}
		c := number(me.Number)
		e := &datastore.Error{Kind: c.Kind, Reason: c.Reason, Number: int(me.Number)}
		if me.SQLState != [5]byte{} {
			e.SQLState = string(me.SQLState[:])
		}
		return e, true
	},
	Rules: []datastore.Rule{
		datastore.TimedOut(),
		{Match: datastore.IsAny(gomysql.ErrNativePassword, gomysql.ErrOldPassword, gomysql.ErrCleartextPassword, gomysql.ErrUnknownPlugin),
			Kind: datastore.KindAuthentication, Reason: "authentication method not usable"},
		{Match: datastore.IsAny(gomysql.ErrNoTLS), Kind: datastore.KindTLS, Reason: "TLS required but the server does not support it"},
		{Match: untrusted, Kind: datastore.KindTLS, Reason: "server certificate not trusted"},
		datastore.Refused(nil),
		datastore.Lost(driver.ErrBadConn, gomysql.ErrInvalidConn, gomysql.ErrPktSync),
		datastore.LookupFailed(),
		datastore.ConnectFailed(nil),
	},
}

// untrusted: the server's certificate failed verification.
func untrusted(err error) bool {
	var ue x509.UnknownAuthorityError
	var he x509.HostnameError
	var ce x509.CertificateInvalidError
	return errors.As(err, &ue) || errors.As(err, &he) || errors.As(err, &ce)
}

// classify turns an error from database/sql or go-sql-driver into a
// *datastore.Error (see datastore.Library.Classify).
func classify(op string, err error) error {
	return library.Classify(op, err)
}

// invalid, settings and notFound build driver-side errors (validation
// before anything is sent). Messages name identifiers only.
func invalid(op, format string, args ...any) error {
	return datastore.Errorf(library.Name, op, datastore.KindInvalid, format, args...)
}

func settings(op, format string, args ...any) error {
	return datastore.Errorf(library.Name, op, datastore.KindSettings, format, args...)
}

func notFound(op, format string, args ...any) error {
	return datastore.Errorf(library.Name, op, datastore.KindNotFound, format, args...)
}

// asSettings turns a validation error of invalid into an error in the
// DataStore's settings (datastore.ErrSettings).
func asSettings(err error) error {
	var e *datastore.Error
	if errors.As(err, &e) && errors.Is(e.Kind.Class(), datastore.ErrInvalid) && e.Err == nil {
		c := *e
		c.Kind = datastore.KindSettings
		return &c
	}
	return err
}
