package mysql

import "github.com/lethe-dev/lethe/internal/datastore"

// Server error numbers this driver tells apart (MySQL's ER_* names in the
// comments; some are MariaDB's or MySQL's only).
const (
	erOutOfMemory             = 1037 // ER_OUTOFMEMORY
	erOutOfSortMemory         = 1038 // ER_OUT_OF_SORTMEMORY
	erTooManyConnections      = 1040 // ER_CON_COUNT_ERROR
	erOutOfResources          = 1041 // ER_OUT_OF_RESOURCES
	erDBAccessDenied          = 1044 // ER_DBACCESS_DENIED_ERROR
	erAccessDenied            = 1045 // ER_ACCESS_DENIED_ERROR
	erBadNull                 = 1048 // ER_BAD_NULL_ERROR
	erBadDB                   = 1049 // ER_BAD_DB_ERROR
	erBadTable                = 1051 // ER_BAD_TABLE_ERROR
	erServerShutdown          = 1053 // ER_SERVER_SHUTDOWN
	erBadField                = 1054 // ER_BAD_FIELD_ERROR
	erDupEntry                = 1062 // ER_DUP_ENTRY
	erParse                   = 1064 // ER_PARSE_ERROR
	erUpdateTableUsed         = 1093 // ER_UPDATE_TABLE_USED
	erUnknownTable            = 1109 // ER_UNKNOWN_TABLE
	erCantCreateThread        = 1135 // ER_CANT_CREATE_THREAD
	erTableAccessDenied       = 1142 // ER_TABLEACCESS_DENIED_ERROR
	erColumnAccessDenied      = 1143 // ER_COLUMNACCESS_DENIED_ERROR
	erNoSuchTable             = 1146 // ER_NO_SUCH_TABLE
	erErrorDuringCommit       = 1180 // ER_ERROR_DURING_COMMIT
	erErrorDuringRollback     = 1181 // ER_ERROR_DURING_ROLLBACK
	erUnknownSystemVariable   = 1193 // ER_UNKNOWN_SYSTEM_VARIABLE
	erTooManyUserConnections  = 1203 // ER_TOO_MANY_USER_CONNECTIONS
	erLockWaitTimeout         = 1205 // ER_LOCK_WAIT_TIMEOUT
	erLockDeadlock            = 1213 // ER_LOCK_DEADLOCK
	erUserLimitReached        = 1226 // ER_USER_LIMIT_REACHED
	erSpecificAccessDenied    = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR
	erNotSupportedAuthMode    = 1251 // ER_NOT_SUPPORTED_AUTH_MODE
	erDataOutOfRange          = 1264 // ER_WARN_DATA_OUT_OF_RANGE
	erDataTruncated           = 1265 // WARN_DATA_TRUNCATED
	erOptionPreventsStatement = 1290 // ER_OPTION_PREVENTS_STATEMENT (read_only)
	erTruncatedWrongValue     = 1292 // ER_TRUNCATED_WRONG_VALUE
	erQueryInterrupted        = 1317 // ER_QUERY_INTERRUPTED
	erWrongValueForField      = 1366 // ER_TRUNCATED_WRONG_VALUE_FOR_FIELD
	erIllegalValueForType     = 1367 // ER_ILLEGAL_VALUE_FOR_TYPE
	erProcAccessDenied        = 1370 // ER_PROCACCESS_DENIED_ERROR
	erDataTooLong             = 1406 // ER_DATA_TOO_LONG
	erRowIsReferenced         = 1451 // ER_ROW_IS_REFERENCED_2
	erNoReferencedRow         = 1452 // ER_NO_REFERENCED_ROW_2
	erDropPartitionMissing    = 1507 // ER_DROP_PARTITION_NON_EXISTENT
	erDropLastPartition       = 1508 // ER_DROP_LAST_PARTITION
	erNeedReprepare           = 1615 // ER_NEED_REPREPARE
	erBinlogFormat            = 1665 // the binary log format does not allow the statement
	erAccessDeniedNoPassword  = 1698 // ER_ACCESS_DENIED_NO_PASSWORD_ERROR
	erReadOnlyTransaction     = 1792 // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
	erReadOnlyMode            = 1836 // ER_READ_ONLY_MODE
	erMustChangePassword      = 1862 // ER_MUST_CHANGE_PASSWORD_LOGIN
	erConnectionKilled        = 1927 // ER_CONNECTION_KILLED (MariaDB)
	erStatementTimeout        = 1969 // ER_STATEMENT_TIMEOUT (MariaDB)
	erQueryTimeout            = 3024 // ER_QUERY_TIMEOUT (MySQL)
	erAccountLocked           = 3118 // ER_ACCOUNT_HAS_BEEN_LOCKED (MySQL)
	erClientDisconnected      = 4031 // the server disconnected an inactive client (MySQL)
	erAccountLockedMariaDB    = 4151 // ER_ACCOUNT_HAS_BEEN_LOCKED (MariaDB)

	// Client error numbers (CR_*) are this range, in case a proxy passes
	// them on.
	crMin = 2000
	crMax = 2999
)

// Reasons shared by several numbers.
var (
	permissionDenied = datastore.Code{Kind: datastore.KindPermission, Reason: "permission denied"}
	cannotLogIn      = datastore.Code{Kind: datastore.KindAuthentication, Reason: "account cannot log in (auth protocol, expired password or locked account)"}
	unknownTable     = datastore.Code{Kind: datastore.KindNotFound, Reason: "unknown table"}
	statementTimeout = datastore.Code{Kind: datastore.KindStatementTimeout, Reason: "statement timeout"}
	tooMany          = datastore.Code{Kind: datastore.KindResources, Reason: "too many connections"}
	readOnly         = datastore.Code{Kind: datastore.KindReadOnly, Reason: "server is read-only"}
	outOfResources   = datastore.Code{Kind: datastore.KindResources, Reason: "server out of resources"}
	endFailed        = datastore.Code{Kind: datastore.KindTransient, Reason: "commit or rollback failed"}
	// The partition list changed under us (dropped concurrently); the next
	// call looks again.
	partitionChanged = datastore.Code{Kind: datastore.KindConflict, Reason: "partition changed concurrently"}
	doesNotFit       = datastore.Code{Kind: datastore.KindData, Reason: "value does not fit the column type"}
)

// numbers maps the server error numbers this driver tells apart to their
// kind and reason. Others are client errors (crMin to crMax) or server
// errors (KindInvalid).
var numbers = map[uint16]datastore.Code{
	erAccessDenied:           {Kind: datastore.KindAuthentication, Reason: "access denied (wrong user name or password)"},
	erDBAccessDenied:         {Kind: datastore.KindAuthentication, Reason: "access denied to the database"},
	erAccessDeniedNoPassword: {Kind: datastore.KindAuthentication, Reason: "access denied"},
	erTableAccessDenied:      permissionDenied,
	erColumnAccessDenied:     permissionDenied,
	erSpecificAccessDenied:   permissionDenied,
	erProcAccessDenied:       permissionDenied,
	erNotSupportedAuthMode:   cannotLogIn,
	erMustChangePassword:     cannotLogIn,
	erAccountLocked:          cannotLogIn,
	erAccountLockedMariaDB:   cannotLogIn,

	erNoSuchTable:  {Kind: datastore.KindNotFound, Reason: "table does not exist"},
	erBadField:     {Kind: datastore.KindNotFound, Reason: "unknown column"},
	erBadDB:        {Kind: datastore.KindNotFound, Reason: "database does not exist"},
	erBadTable:     unknownTable,
	erUnknownTable: unknownTable,

	erLockWaitTimeout:         {Kind: datastore.KindLockTimeout, Reason: "lock wait timeout"},
	erLockDeadlock:            {Kind: datastore.KindConflict, Reason: "deadlock"},
	erStatementTimeout:        statementTimeout,
	erQueryTimeout:            statementTimeout,
	erQueryInterrupted:        {Kind: datastore.KindStatementTimeout, Reason: "query interrupted"},
	erConnectionKilled:        {Kind: datastore.KindConnection, Reason: "connection killed"},
	erServerShutdown:          {Kind: datastore.KindServer, Reason: "server shutting down"},
	erTooManyConnections:      tooMany,
	erTooManyUserConnections:  tooMany,
	erUserLimitReached:        tooMany,
	erOptionPreventsStatement: readOnly,
	erReadOnlyMode:            readOnly,
	erReadOnlyTransaction:     readOnly,
	erOutOfMemory:             outOfResources,
	erOutOfSortMemory:         outOfResources,
	erOutOfResources:          outOfResources,
	erCantCreateThread:        outOfResources,
	erNeedReprepare:           {Kind: datastore.KindTransient, Reason: "prepared statement needs to be re-prepared"},
	erErrorDuringCommit:       endFailed,
	erErrorDuringRollback:     endFailed,
	erClientDisconnected:      {Kind: datastore.KindConnection, Reason: "disconnected by the server"},
	erDropPartitionMissing:    partitionChanged,
	erDropLastPartition:       partitionChanged,

	erRowIsReferenced:     {Kind: datastore.KindForeignKey, Reason: "a foreign key of another table refers to these rows: erase the referencing rows first"},
	erNoReferencedRow:     {Kind: datastore.KindForeignKey, Reason: "foreign key constraint fails"},
	erBadNull:             {Kind: datastore.KindConstraint, Reason: "column cannot be null"},
	erDataTooLong:         {Kind: datastore.KindData, Reason: "value too long for the column"},
	erDataOutOfRange:      doesNotFit,
	erDataTruncated:       doesNotFit,
	erTruncatedWrongValue: doesNotFit,
	erWrongValueForField:  doesNotFit,
	erIllegalValueForType: doesNotFit,
	erDupEntry:            {Kind: datastore.KindConstraint, Reason: "duplicate key"},
	erParse:               {Kind: datastore.KindStatement, Reason: "syntax error"},
	erUpdateTableUsed:     {Kind: datastore.KindStatement, Reason: "the statement refers to its own target table in a subquery"},
	erBinlogFormat:        {Kind: datastore.KindStatement, Reason: "binary log format does not allow this statement"},
}

// number looks a server error number up in numbers.
func number(n uint16) datastore.Code {
	if c, ok := numbers[n]; ok {
		return c
	}
	if n >= crMin && n <= crMax {
		return datastore.Code{Kind: datastore.KindConnection, Reason: "client or connection error"}
	}
	return datastore.Code{Kind: datastore.KindInvalid, Reason: "server error"}
}
