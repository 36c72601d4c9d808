package hostile

import (
	"strings"
)

// hostileCase is one manifest a namespace user applies. Exactly one of
// rejected (substrings of the admission error) and stalled (the reason of
// the Stalled condition Lethe sets, with message a substring of its
// message) is set.
type hostileCase struct {
	name     string
	manifest string
	rejected []string
	stalled  string
	message  string
}

func reject(name, manifest string, want ...string) hostileCase {
	return hostileCase{name: name, manifest: manifest, rejected: want}
}

func stall(name, manifest, reason, message string) hostileCase {
	return hostileCase{name: name, manifest: manifest, stalled: reason, message: message}
}

// obj builds a manifest of a Lethe kind; meta lines go under metadata
// (the name is set per case).
func obj(kind, meta, spec string) string {
	m := "apiVersion: retention.lethe.dev/v1alpha1\nkind: " + kind + "\nmetadata:\n  name: NAME\n"
	if meta != "" {
		m += indent(dedent(meta), "  ") + "\n"
	}
	return m + "spec:\n" + indent(dedent(spec), "  ")
}

func dedent(s string) string {
	lines := strings.Split(strings.Trim(s, "\n"), "\n")
	min := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		if n := len(l) - len(strings.TrimLeft(l, " \t")); min < 0 || n < min {
			min = n
		}
	}
	for i, l := range lines {
		if len(l) >= min && min > 0 {
			lines[i] = l[min:]
		}
	}
	return strings.Join(lines, "\n")
}

func indent(s, by string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = by + l
		}
	}
	return strings.Join(lines, "\n")
}

func dataStore(spec string) string { return obj("DataStore", "", spec) }
func dataset(spec string) string   { return obj("Dataset", "", spec) }
func policy(spec string) string    { return obj("RetentionPolicy", "", spec) }
func request(spec string) string   { return obj("DeletionRequest", "", spec) }
func hold(spec string) string      { return obj("LegalHold", "", spec) }
func purgeJob(spec string) string  { return obj("PurgeJob", "", spec) }
func recipient(spec string) string { return obj("Recipient", "", spec) }
func replay(spec string) string    { return obj("ErasureReplay", "", spec) }
func runNow(spec string) string {
	return obj("RetentionPolicy", "annotations: {retention.lethe.dev/run-now: \"1\"}", spec)
}
func pgCollections(cols string) string {
	return dataset("dataStoreRef: {name: pg}\ncollections:\n" + indent(dedent(cols), "  "))
}
func myCollections(cols string) string {
	return dataset("dataStoreRef: {name: my}\ncollections:\n" + indent(dedent(cols), "  "))
}
func redisCollections(cols string) string {
	return dataset("dataStoreRef: {name: rd}\ncollections:\n" + indent(dedent(cols), "  "))
}
func s3Collections(cols string) string {
	return dataset("dataStoreRef: {name: s3}\ncollections:\n" + indent(dedent(cols), "  "))
}

// Valid pieces the cases vary. {{...}} are the fixture's addresses.
const (
	pgStore    = "type: PostgreSQL\nhost: {{PGHOST}}\nport: {{PGPORT}}\ndatabase: {{PGDB}}\ntls: Disable\ncredentialsSecretRef: {name: pg-creds}\n"
	myStore    = "type: MySQL\nhost: {{MYHOST}}\nport: {{MYPORT}}\ndatabase: {{MYDB}}\ntls: Disable\ncredentialsSecretRef: {name: my-creds}\n"
	redisStore = "type: Redis\nhost: {{RDHOST}}\nport: {{RDPORT}}\nredisDB: {{RDDB}}\ntls: Disable\n"
	s3Store    = "type: S3\ntls: Disable\ncredentialsSecretRef: {name: s3-creds}\ns3: {endpoint: \"{{S3ENDPOINT}}\", region: us-east-1, bucket: {{S3BUCKET}}, forcePathStyle: true}\n"
	// A valid rule, request subject and hold scope the cases vary.
	purgeUsers  = "datasetRef: {name: pg-shop}\nmode: Enforce\nschedule: \"0 3 * * *\"\nrules: [{name: r, collections: [users], olderThan: 30d, action: Delete}]\n"
	subjectUser = "subject: {identities: [{type: user_id, value: \"1\"}]}\nreason: SubjectRequest\n"
	// A Recipient without its endpoint.
	recipientOf = "datasets: [pg-shop]\nidentityTypes: [email]\nsigningSecretRef: {name: no-such-hook, key: secret}\n"
	msgHTTPS    = "must be an https URL without credentials or fragment"
)

// Messages users see (the CRDs' CEL rules and OpenAPI checks).
const (
	msgSystemSchema  = "must not be a system schema"
	msgMySQLSystemDB = "database must not be a system schema (mysql, sys, performance_schema, information_schema)"
	msgLiteralKey    = "needs a literal part (a letter or digit outside the placeholders, such as session:"
	msgLiteralPrefix = "needs a literal part (a letter or digit outside the placeholders, such as uploads/"
	msgDotSegment    = "must not contain . or .. path segments"
	msgHundredYears  = "must be at most 100 years: at most 100y, 1200mo, 5218w, 36525d or 99999h"
	msgDay           = "must be at most 24 hours: at most 1440m, 86400s or 86400000ms"
	msgDate          = "must be a date from 1970-01-01 to 2200-12-31"
	msgControl       = "must not contain NUL or other control characters"
	msgOperator      = "matchExpressions operator must be In, NotIn, Exists or DoesNotExist"
	msgSameNS        = "Secret references are same-namespace only: remove namespace"
	msgRetentionDur  = "must be a positive duration with one unit: h, d, w, mo or y"
	msgIdentifier    = "should match '^[A-Za-z_][A-Za-z0-9_]*$'"
)

// cases: every case of issue 17's "Data and robustness" section and the
// bad values of "Every bad value gets a clear answer", per kind.
func cases() []hostileCase {
	return []hostileCase{
		// --- DataStore: fields that do not apply to the store type --------------
		reject("DataStore/redisDB on PostgreSQL", dataStore(pgStore+"redisDB: 3\n"), "redisDB is only for type Redis"),
		reject("DataStore/redisDB on MySQL", dataStore(myStore+"redisDB: 1\n"), "redisDB is only for type Redis"),
		reject("DataStore/redisDB on S3", dataStore(s3Store+"redisDB: 1\n"), "redisDB is only for type Redis"),
		reject("DataStore/database on Redis", dataStore(redisStore+"database: app\n"), "Redis selects its database with redisDB, not database"),
		reject("DataStore/database on S3", dataStore(s3Store+"database: app\n"), "database is only for types PostgreSQL and MySQL"),
		reject("DataStore/host on S3", dataStore(s3Store+"host: 169.254.169.254\n"), "host and port are not used by type S3: set s3.endpoint"),
		reject("DataStore/port on S3", dataStore(s3Store+"port: 443\n"), "host and port are not used by type S3"),
		reject("DataStore/s3 section on PostgreSQL", dataStore(pgStore+"s3: {bucket: data}\n"), "the s3 section is only for type S3"),
		// --- DataStore: system databases ------------------------------------------
		reject("DataStore/MySQL database mysql", dataStore(strings.Replace(myStore, "{{MYDB}}", "mysql", 1)), msgMySQLSystemDB),
		reject("DataStore/MySQL database information_schema", dataStore(strings.Replace(myStore, "{{MYDB}}", "information_schema", 1)), msgMySQLSystemDB),
		reject("DataStore/MySQL database performance_schema", dataStore(strings.Replace(myStore, "{{MYDB}}", "performance_schema", 1)), msgMySQLSystemDB),
		reject("DataStore/MySQL database sys", dataStore(strings.Replace(myStore, "{{MYDB}}", "sys", 1)), msgMySQLSystemDB),
		reject("DataStore/MySQL database MySQL in capitals", dataStore(strings.Replace(myStore, "{{MYDB}}", "MySQL", 1)), msgMySQLSystemDB),
		// --- DataStore: bad values ------------------------------------------------
		reject("DataStore/host with a port", dataStore(strings.Replace(pgStore, "{{PGHOST}}", "db:5432", 1)), "must be a host name or IP address, without a port"),
		reject("DataStore/host with a shell metacharacter", dataStore(strings.Replace(pgStore, "{{PGHOST}}", "\"db;reboot\"", 1)), "must be a host name or IP address"),
		reject("DataStore/port 0", dataStore(strings.Replace(pgStore, "{{PGPORT}}", "0", 1)), "should be greater than or equal to 1"),
		reject("DataStore/port 70000", dataStore(strings.Replace(pgStore, "{{PGPORT}}", "70000", 1)), "should be less than or equal to 65535"),
		reject("DataStore/statementTimeout 9999999m", dataStore(pgStore+"limits: {statementTimeout: 9999999m}\n"), msgDay),
		reject("DataStore/lockTimeout 1441m", dataStore(pgStore+"limits: {lockTimeout: 1441m}\n"), msgDay),
		reject("DataStore/probeInterval 86401s", dataStore(pgStore+"probeInterval: 86401s\n"), msgDay),
		reject("DataStore/maxConnections 1000", dataStore(pgStore+"limits: {maxConnections: 1000}\n"), "should be less than or equal to 64"),
		reject("DataStore/maxBatchesPerSecond -1", dataStore(pgStore+"limits: {maxBatchesPerSecond: -1}\n"), "should be greater than or equal to 0"),
		reject("DataStore/credentials in another namespace", dataStore(strings.Replace(pgStore, "{name: pg-creds}", "{name: pg-creds, namespace: kube-system}", 1)), msgSameNS),
		reject("DataStore/S3 endpoint with credentials", dataStore(strings.Replace(s3Store, "{{S3ENDPOINT}}", "http://key:secret@127.0.0.1:9000", 1)), "must be an http or https URL without credentials"),
		reject("DataStore/unknown type", dataStore("type: Oracle\nhost: db\ndatabase: app\n"), `Unsupported value: "Oracle"`),
		reject("DataStore/database with a quote", dataStore(strings.Replace(pgStore, "{{PGDB}}", "\"app'; DROP DATABASE x; --\"", 1)), msgIdentifier),
		stall("DataStore/credentials Secret missing", dataStore(strings.Replace(pgStore, "{name: pg-creds}", "{name: no-such-secret}", 1)), "SecretNotFound", "no-such-secret"),

		// --- Dataset: system schemas, at admission -------------------------------
		reject("Dataset/schema pg_catalog", pgCollections("- {name: roles, schema: pg_catalog, table: pg_authid}"), msgSystemSchema),
		reject("Dataset/schema information_schema", pgCollections("- {name: t, schema: information_schema, table: tables}"), msgSystemSchema),
		reject("Dataset/schema pg_toast", pgCollections("- {name: t, schema: pg_toast, table: pg_toast_1255}"), msgSystemSchema),
		reject("Dataset/schema pg_temp_1", pgCollections("- {name: t, schema: pg_temp_1, table: x}"), msgSystemSchema),
		reject("Dataset/schema pg_toast_temp_1", pgCollections("- {name: t, schema: pg_toast_temp_1, table: x}"), msgSystemSchema),
		reject("Dataset/schema PG_CATALOG in capitals", pgCollections("- {name: t, schema: PG_CATALOG, table: pg_authid}"), msgSystemSchema),
		reject("Dataset/schema mysql", myCollections("- {name: t, schema: mysql, table: user}"), msgSystemSchema),
		reject("Dataset/schema performance_schema", myCollections("- {name: t, schema: performance_schema, table: threads}"), msgSystemSchema),
		reject("Dataset/schema sys", myCollections("- {name: t, schema: sys, table: sys_config}"), msgSystemSchema),
		reject("Dataset/a dotted table name", pgCollections("- {name: t, table: pg_catalog.pg_authid}"), msgIdentifier),
		reject("Dataset/a table name with a quote", pgCollections("- {name: t, table: \"users\\\"; DROP TABLE users; --\"}"), msgIdentifier),
		reject("Dataset/a field name with a space", pgCollections("- {name: users, fields: [{name: \"role text\"}]}"), msgIdentifier),
		// --- Dataset: identity types and primary keys, at admission ------------
		reject("Dataset/identity type declared twice", pgCollections("- {name: users, identities: [{type: user_id, field: id}, {type: user_id, field: email}]}"),
			"each identity type may be declared once per collection"),
		reject("Dataset/primaryKey listing a column twice", pgCollections("- {name: users, primaryKey: [id, id]}"), "primaryKey lists a column twice"),
		// --- Dataset: key patterns and prefixes need a literal part -------------
		reject("Dataset/keyPattern {user_id}", redisCollections("- {name: k, keyPattern: \"{user_id}\", identities: [{type: user_id}]}"), msgLiteralKey),
		reject("Dataset/keyPattern {user_id}*", redisCollections("- {name: k, keyPattern: \"{user_id}*\", identities: [{type: user_id}]}"), msgLiteralKey),
		reject("Dataset/keyPattern *{email}", redisCollections("- {name: k, keyPattern: \"*{email}\", identities: [{type: email}]}"), msgLiteralKey),
		reject("Dataset/keyPattern {user_id}:*", redisCollections("- {name: k, keyPattern: \"{user_id}:*\", identities: [{type: user_id}]}"), msgLiteralKey),
		reject("Dataset/keyPattern {user_id}:{email}", redisCollections("- {name: k, keyPattern: \"{user_id}:{email}\", identities: [{type: user_id}, {type: email}]}"), msgLiteralKey),
		reject("Dataset/keyPattern * alone", redisCollections("- {name: k, keyPattern: \"*\"}"), "must contain a literal part or a {placeholder}"),
		reject("Dataset/keyPattern with a space", redisCollections("- {name: k, keyPattern: \"session:{user_id} *\", identities: [{type: user_id}]}"), "must contain only letters, digits and _ : . / - * { }"),
		reject("Dataset/prefix {user_id}/", s3Collections("- {name: o, prefix: \"{user_id}/\", identities: [{type: user_id}]}"), msgLiteralPrefix),
		reject("Dataset/prefix {user_id}", s3Collections("- {name: o, prefix: \"{user_id}\", identities: [{type: user_id}]}"), msgLiteralPrefix),
		reject("Dataset/prefix ../ at the start", s3Collections("- {name: o, prefix: \"../uploads/{user_id}/\", identities: [{type: user_id}]}"), msgDotSegment),
		reject("Dataset/prefix with a .. segment", s3Collections("- {name: o, prefix: \"uploads/../{user_id}/\", identities: [{type: user_id}]}"), msgDotSegment),
		reject("Dataset/prefix with a . segment", s3Collections("- {name: o, prefix: \"uploads/./{user_id}/\", identities: [{type: user_id}]}"), msgDotSegment),
		reject("Dataset/prefix ending in ..", s3Collections("- {name: o, prefix: \"uploads/{user_id}/..\", identities: [{type: user_id}]}"), msgDotSegment),
		reject("Dataset/prefix starting with /", s3Collections("- {name: o, prefix: \"/uploads/{user_id}/\", identities: [{type: user_id}]}"), "must not start with /"),
		// --- Dataset: other bad values ---------------------------------------------
		reject("Dataset/Anonymize without a field strategy", pgCollections("- {name: users, action: Anonymize, fields: [{name: note}]}"), "action Anonymize needs at least one field with an anonymize strategy"),
		reject("Dataset/HMAC without a key", pgCollections("- {name: users, fields: [{name: note, anonymize: {strategy: HMAC}}]}"), "strategy HMAC needs hmacKeySecretRef"),
		reject("Dataset/Fixed without replacement", pgCollections("- {name: users, fields: [{name: note, anonymize: {strategy: Fixed}}]}"), "strategy Fixed needs replacement"),
		reject("Dataset/table and keyPattern", redisCollections("- {name: k, table: users, keyPattern: \"s:{user_id}\", identities: [{type: user_id}]}"), "table and schema are only for SQL collections"),
		reject("Dataset/HMAC key in another namespace", dataset("dataStoreRef: {name: pg}\nhmacKeySecretRef: {name: hmac-key, key: key, namespace: kube-system}\ncollections: [{name: users}]\n"), msgSameNS),
		reject("Dataset/unknown time zone", pgCollections("- {name: users, timestampField: created_at, timestampTimeZone: Mars/Olympus}"), "must be an IANA time zone name"),
		// --- Dataset: checked against the live store -----------------------------
		stall("Dataset/PostgreSQL pg_authid without schema resolves to public", pgCollections("- {name: roles, table: pg_authid}"), "CollectionNotFound", "public.pg_authid not found"),
		stall("Dataset/PostgreSQL pg_class without schema resolves to public", pgCollections("- {name: classes, table: pg_class}"), "CollectionNotFound", "public.pg_class not found"),
		stall("Dataset/MariaDB table user of the mysql schema", myCollections("- {name: user}"), "CollectionNotFound", "table user not found"),
		stall("Dataset/MariaDB collection with a schema", myCollections("- {name: subscribers, schema: public}"), "InvalidSpec", "schema is not used by MySQL"),
		stall("Dataset/primaryKey not unique (no unique index)", pgCollections("- {name: events, primaryKey: [id], timestampField: created_at}"), "PrimaryKeyNotUnique", "collection events: primaryKey (id) is not backed by a primary key or unique index"),
		stall("Dataset/primaryKey on a foreign key column", pgCollections("- {name: orders, primaryKey: [user_id]}"), "PrimaryKeyNotUnique", "collection orders: primaryKey (user_id)"),
		stall("Dataset/primaryKey backed only by a partial unique index", pgCollections("- {name: partial_uq, primaryKey: [id]}"), "PrimaryKeyNotUnique", "collection partial_uq"),
		stall("Dataset/primaryKey backed by a unique index on a nullable column", pgCollections("- {name: nullable_uq, primaryKey: [code]}"), "PrimaryKeyNotUnique", "collection nullable_uq"),
		stall("Dataset/MariaDB primaryKey not unique", myCollections("- {name: subscribers, primaryKey: [created_at]}"), "PrimaryKeyNotUnique", "collection subscribers: primaryKey (created_at)"),
		stall("Dataset/MariaDB table without any key", myCollections("- {name: email_events}"), "InvalidSpec", "no primary key or unique NOT NULL key"),
		stall("Dataset/undeclared column", pgCollections("- {name: users, fields: [{name: password_hash}]}"), "FieldNotFound", "field users.password_hash not found"),
		stall("Dataset/missing table", pgCollections("- {name: no_such_table}"), "CollectionNotFound", "no_such_table"),
		stall("Dataset/reference to an unknown collection", pgCollections("- {name: orders, references: [{field: user_id, collection: accounts}]}"), "InvalidSpec", "refers to unknown collection accounts"),
		stall("Dataset/key pattern on a PostgreSQL store", pgCollections("- {name: k, keyPattern: \"session:{user_id}:*\", identities: [{type: user_id}]}"), "InvalidSpec", "holds tables, not key patterns or prefixes"),
		stall("Dataset/table on a Redis store", redisCollections("- {name: users}"), "InvalidSpec", "a Redis collection needs keyPattern"),
		stall("Dataset/Redis * before a placeholder", redisCollections("- {name: k, keyPattern: \"s*:{user_id}\", identities: [{type: user_id}]}"), "InvalidSpec", "'*' before a placeholder"),
		stall("Dataset/Redis * right after a placeholder", redisCollections("- {name: k, keyPattern: \"session:{user_id}*\", identities: [{type: user_id}]}"), "InvalidSpec", "'*' right after {user_id}"),
		stall("Dataset/Redis placeholders with nothing between", redisCollections("- {name: k, keyPattern: \"s:{user_id}{email}\", identities: [{type: user_id}, {type: email}]}"), "InvalidSpec", "nothing between them"),
		stall("Dataset/Redis placeholder of an undeclared identity", redisCollections("- {name: k, keyPattern: \"session:{email}:*\", identities: [{type: user_id}]}"), "InvalidSpec", "placeholder {email} is not an identity type declared"),
		stall("Dataset/S3 placeholder of an undeclared identity", s3Collections("- {name: o, prefix: \"uploads/{email}/\", identities: [{type: user_id}]}"), "InvalidSpec", "placeholder {email} is not an identity type declared"),
		stall("Dataset/HMAC key Secret missing", dataset("dataStoreRef: {name: pg}\nhmacKeySecretRef: {name: no-such-key, key: key}\ncollections: [{name: users, fields: [{name: note, anonymize: {strategy: HMAC}}]}]\n"), "SecretNotFound", "no-such-key"),

		// --- RetentionPolicy: bounds -------------------------------------------------
		reject("RetentionPolicy/olderThan 5000y", policy(strings.Replace(purgeUsers, "30d", "5000y", 1)), msgHundredYears),
		reject("RetentionPolicy/olderThan 99999mo", policy(strings.Replace(purgeUsers, "30d", "99999mo", 1)), msgHundredYears),
		reject("RetentionPolicy/olderThan 101y", policy(strings.Replace(purgeUsers, "30d", "101y", 1)), msgHundredYears),
		reject("RetentionPolicy/olderThan 36526d", policy(strings.Replace(purgeUsers, "30d", "36526d", 1)), msgHundredYears),
		reject("RetentionPolicy/olderThan 5219w", policy(strings.Replace(purgeUsers, "30d", "5219w", 1)), msgHundredYears),
		reject("RetentionPolicy/olderThan 6m (minutes are no unit)", policy(strings.Replace(purgeUsers, "30d", "6m", 1)), msgRetentionDur),
		reject("RetentionPolicy/startingDeadlineSeconds 10000000000", policy(purgeUsers+"startingDeadlineSeconds: 10000000000\n"), "should be less than or equal to 31536000"),
		reject("RetentionPolicy/startingDeadlineSeconds -1", policy(purgeUsers+"startingDeadlineSeconds: -1\n"), "should be greater than or equal to 0"),
		reject("RetentionPolicy/effectiveFrom 9999-12-31", policy(purgeUsers+"effectiveFrom: \"9999-12-31T00:00:00Z\"\n"), msgDate),
		reject("RetentionPolicy/effectiveFrom 2201-01-01", policy(purgeUsers+"effectiveFrom: \"2201-01-01T00:00:00Z\"\n"), msgDate),
		reject("RetentionPolicy/effectiveFrom 1900-01-01", policy(purgeUsers+"effectiveFrom: \"1900-01-01T00:00:00Z\"\n"), msgDate),
		reject("RetentionPolicy/six-field schedule", policy(strings.Replace(purgeUsers, "\"0 3 * * *\"", "\"0 0 3 * * *\"", 1)), "must be a five-field cron expression"),
		reject("RetentionPolicy/@every schedule", policy(strings.Replace(purgeUsers, "\"0 3 * * *\"", "\"@every 1m\"", 1)), "must be a five-field cron expression"),
		reject("RetentionPolicy/unknown time zone", policy(purgeUsers+"timeZone: Mars/Phobos\n"), "must be an IANA time zone name"),
		reject("RetentionPolicy/no mode", policy(strings.Replace(purgeUsers, "mode: Enforce\n", "", 1)), "Required value"),
		reject("RetentionPolicy/batchSize 1000000", policy(purgeUsers+"batchSize: 1000000\n"), "should be less than or equal to 100000"),
		reject("RetentionPolicy/maxPercent 101", policy(purgeUsers+"safety: {maxPercent: 101}\n"), "should be less than or equal to 100"),
		reject("RetentionPolicy/maxRows 10^13", policy(purgeUsers+"safety: {maxRows: 10000000000000}\n"), "spec.safety.maxRows"),
		reject("RetentionPolicy/history limit 1000", policy(purgeUsers+"successfulRunsHistoryLimit: 1000\n"), "should be less than or equal to 100"),
		reject("RetentionPolicy/fields with action Delete", policy(strings.Replace(purgeUsers, "action: Delete}", "action: Delete, fields: [{name: note, strategy: \"Null\"}]}", 1)), "fields are only used by action Anonymize"),
		reject("RetentionPolicy/duplicate rule names", policy(strings.Replace(purgeUsers, "rules: [", "rules: [{name: r, collections: [orders], olderThan: 1y, action: Delete}, ", 1)), "rule names must be unique"),
		reject("RetentionPolicy/rule selecting nothing", policy(strings.Replace(purgeUsers, "collections: [users], ", "", 1)), "a rule selects collections or categories"),
		// --- RetentionPolicy: only declared fields change ---------------------------
		stall("RetentionPolicy/rule anonymizes an undeclared column with any replacement",
			policy("datasetRef: {name: pg-shop}\nmode: Enforce\nschedule: \"0 3 * * *\"\nrules: [{name: r, collections: [users], olderThan: 30d, action: Anonymize, fields: [{name: role, strategy: Fixed, replacement: admin}]}]\n"),
			"InvalidSpec", "field users.role is not declared by the Dataset with an anonymize strategy"),
		stall("RetentionPolicy/rule anonymizes an identity column without a strategy",
			policy("datasetRef: {name: pg-shop}\nmode: Enforce\nschedule: \"0 3 * * *\"\nrules: [{name: r, collections: [users], olderThan: 30d, action: Anonymize, fields: [{name: email, strategy: \"Null\"}]}]\n"),
			"InvalidSpec", "field users.email is not declared by the Dataset with an anonymize strategy"),
		stall("RetentionPolicy/rule writes its own Fixed text into a Redact field",
			policy("datasetRef: {name: pg-shop}\nmode: Enforce\nschedule: \"0 3 * * *\"\nrules: [{name: r, collections: [users], olderThan: 30d, action: Anonymize, fields: [{name: note, strategy: Fixed, replacement: admin}]}]\n"),
			"InvalidSpec", "field users.note: strategy Fixed may only write the replacement the Dataset declares"),
		stall("RetentionPolicy/rule overrides a Fixed replacement",
			policy("datasetRef: {name: pg-shop}\nmode: Enforce\nschedule: \"0 3 * * *\"\nrules: [{name: r, collections: [orders], olderThan: 30d, action: Anonymize, fields: [{name: shipping, strategy: Fixed, replacement: \"role=admin\"}]}]\n"),
			"InvalidSpec", "field orders.shipping: strategy Fixed may only write the replacement the Dataset declares"),
		stall("RetentionPolicy/rule on an undeclared collection",
			policy(strings.Replace(purgeUsers, "collections: [users]", "collections: [pg_authid]", 1)), "InvalidSpec", "selects collection pg_authid, which Dataset pg-shop does not declare"),
		stall("RetentionPolicy/rule HMAC",
			policy("datasetRef: {name: pg-shop}\nmode: Enforce\nschedule: \"0 3 * * *\"\nrules: [{name: r, collections: [users], olderThan: 30d, action: Anonymize, fields: [{name: note, strategy: HMAC}]}]\n"),
			"InvalidSpec", "with HMAC on every run"),
		stall("RetentionPolicy/missing Dataset", policy(strings.Replace(purgeUsers, "pg-shop", "no-such-dataset", 1)), "DatasetNotFound", "no-such-dataset"),
		stall("RetentionPolicy/run over safety.maxRows", runNow(purgeUsers+"safety: {maxRows: 1}\n"), "SafetyLimitExceeded", "would exceed the safety limit and changed nothing"),
		stall("RetentionPolicy/run over safety.maxPercent",
			runNow("datasetRef: {name: pg-shop}\nmode: Enforce\nschedule: \"0 3 * * *\"\nrules: [{name: r, collections: [orders], olderThan: 30d, action: Delete}]\nsafety: {maxPercent: 10}\n"),
			"SafetyLimitExceeded", "would exceed the safety limit and changed nothing"),

		// --- DeletionRequest: bad values --------------------------------------------
		reject("DeletionRequest/identity with a NUL byte", request("subject: {identities: [{type: email, value: \"a\\u0000b@example.com\"}]}\nreason: SubjectRequest\n"), msgControl),
		reject("DeletionRequest/identity with a line break", request("subject: {identities: [{type: email, value: \"a@example.com\\nkeep:1\"}]}\nreason: SubjectRequest\n"), msgControl),
		reject("DeletionRequest/identity with a tab", request("subject: {identities: [{type: email, value: \"a\\tb\"}]}\nreason: SubjectRequest\n"), msgControl),
		reject("DeletionRequest/identity with DEL", request("subject: {identities: [{type: email, value: \"a\\x7Fb\"}]}\nreason: SubjectRequest\n"), msgControl),
		reject("DeletionRequest/identity with an escape sequence", request("subject: {identities: [{type: email, value: \"\\e[31mred\"}]}\nreason: SubjectRequest\n"), msgControl),
		reject("DeletionRequest/selector operator Like", request(subjectUser+"scope: {selector: {matchExpressions: [{key: app, operator: Like, values: [shop]}]}}\n"), msgOperator),
		reject("DeletionRequest/selector In without values", request(subjectUser+"scope: {selector: {matchExpressions: [{key: app, operator: In}]}}\n"), "In and NotIn need values"),
		reject("DeletionRequest/selector Exists with values", request(subjectUser+"scope: {selector: {matchExpressions: [{key: app, operator: Exists, values: [x]}]}}\n"), "Exists and DoesNotExist take none"),
		reject("DeletionRequest/deadline 5000y", request(subjectUser+"deadline: 5000y\n"), msgHundredYears),
		reject("DeletionRequest/deadline 99999mo", request(subjectUser+"deadline: 99999mo\n"), msgHundredYears),
		reject("DeletionRequest/reviewWindow 101y", request(subjectUser+"reviewWindow: 101y\n"), msgHundredYears),
		reject("DeletionRequest/reviewWindow on a Minor", request(strings.Replace(subjectUser, "SubjectRequest", "Minor", 1)+"reviewWindow: 48h\n"), "reason Minor is erased at once"),
		reject("DeletionRequest/ttlSecondsAfterFinished 2147483647", request(subjectUser+"ttlSecondsAfterFinished: 2147483647\n"), "should be less than or equal to 315360000"),
		reject("DeletionRequest/ttlSecondsAfterFinished -1", request(subjectUser+"ttlSecondsAfterFinished: -1\n"), "should be greater than or equal to 0"),
		reject("DeletionRequest/no identity", request("subject: {}\nreason: SubjectRequest\n"), "a subject needs at least one identity"),
		reject("DeletionRequest/identities Secret in another namespace", request("subject: {identitiesSecretRef: {name: ids, namespace: kube-system}}\nreason: SubjectRequest\n"), msgSameNS),
		reject("DeletionRequest/identity type in capitals", request("subject: {identities: [{type: Email, value: a@example.com}]}\nreason: SubjectRequest\n"), "should match '^[a-z][a-z0-9_]*$'"),
		reject("DeletionRequest/identity longer than 1024", request("subject: {identities: [{type: email, value: \""+strings.Repeat("a", 1025)+"\"}]}\nreason: SubjectRequest\n"), "Too long"),
		reject("DeletionRequest/override naming a quoted collection", request(subjectUser+"overrides: [{dataset: pg-shop, collection: \"users;\", action: Delete}]\n"), msgIdentifier),
		reject("DeletionRequest/datasets and selector", request(subjectUser+"scope: {datasets: [pg-shop], selector: {matchLabels: {app: shop}}}\n"), "use datasets or selector, not both"),
		reject("DeletionRequest/unknown reason", request("subject: {identities: [{type: user_id, value: \"1\"}]}\nreason: Because\n"), `Unsupported value: "Because"`),
		// --- DeletionRequest: accepted, then a clear answer -----------------------
		stall("DeletionRequest/selector with an invalid label value", request(subjectUser+"scope: {selector: {matchLabels: {app: \"bad value!\"}}}\n"), "InvalidSpec", "spec.scope.selector is not a valid label selector"),
		stall("DeletionRequest/identities Secret missing", request("subject: {identitiesSecretRef: {name: no-such-ids}}\nreason: SubjectRequest\n"), "SecretNotFound", "no-such-ids"),
		stall("DeletionRequest/identity Secret value with a NUL byte", request("subject: {identitiesSecretRef: {name: bad-identities}}\nreason: SubjectRequest\n"), "InvalidIdentity", "contains a NUL or other control character"),
		stall("DeletionRequest/identity Secret key that is no identity type", request("subject: {identitiesSecretRef: {name: bad-type-identities}}\nreason: SubjectRequest\n"), "InvalidIdentity", "is not an identity type"),
		stall("DeletionRequest/Redis value with the pattern's delimiter", request("subject: {identities: [{type: user_id, value: \"u1:a\"}]}\nreason: SubjectRequest\nscope: {datasets: [rd-sessions]}\n"), "InvalidSpec", "the character that ends {user_id} in the key pattern"),
		stall("DeletionRequest/S3 value with a path", request("subject: {identities: [{type: user_id, value: \"../keep\"}]}\nreason: SubjectRequest\nscope: {datasets: [s3-uploads]}\n"), "InvalidSpec", "contains '/'"),
		stall("DeletionRequest/S3 value ..", request("subject: {identities: [{type: user_id, value: \"..\"}]}\nreason: SubjectRequest\nscope: {datasets: [s3-uploads]}\n"), "InvalidSpec", "contains '..'"),
		stall("DeletionRequest/override Anonymize without strategies", request(subjectUser+"scope: {datasets: [pg-shop]}\noverrides: [{dataset: pg-shop, collection: events, action: Anonymize}]\n"), "InvalidSpec", "none of its fields has an anonymize strategy"),

		// --- Recipient --------------------------------------------------------------
		reject("Recipient/http endpoint", recipient(recipientOf+"endpoint: http://hooks.example.com/erasures\n"), msgHTTPS),
		reject("Recipient/credentials in the endpoint", recipient(recipientOf+"endpoint: https://lethe:secret@hooks.example.com/\n"), msgHTTPS),
		reject("Recipient/fragment in the endpoint", recipient(recipientOf+"endpoint: https://hooks.example.com/#x\n"), msgHTTPS),
		reject("Recipient/file endpoint", recipient(recipientOf+"endpoint: file:///etc/passwd\n"), msgHTTPS),
		reject("Recipient/http acknowledgement URL", recipient(recipientOf+"endpoint: https://hooks.example.com/\nacknowledgement: {mode: Async, url: \"http://hooks.example.com/acks\"}\n"), msgHTTPS),
		reject("Recipient/acknowledgement URL without Async", recipient(recipientOf+"endpoint: https://hooks.example.com/\nacknowledgement: {url: \"https://hooks.example.com/acks\"}\n"), "acknowledgement.url is used only with mode Async"),
		reject("Recipient/receives nothing", recipient("identityTypes: [email]\nendpoint: https://hooks.example.com/\nsigningSecretRef: {name: hook, key: secret}\n"), "set datasets, categories or both"),
		reject("Recipient/no identity types", recipient("datasets: [pg-shop]\nidentityTypes: []\nendpoint: https://hooks.example.com/\nsigningSecretRef: {name: hook, key: secret}\n"), "should have at least 1 items"),
		stall("Recipient/cloud metadata endpoint", recipient(recipientOf+"endpoint: https://169.254.169.254/latest/meta-data\n"), "NetworkNotAllowed", "169.254.169.254"),
		stall("Recipient/signing Secret missing", recipient(recipientOf+"endpoint: https://127.0.0.1:9/erasures\n"), "SecretNotFound", "no-such-hook"),
		// --- ErasureReplay ------------------------------------------------------------
		reject("ErasureReplay/no DataStore", replay("backupTime: \"2026-01-01T00:00:00Z\"\n"), "spec.dataStore: Required value"),
		reject("ErasureReplay/no backup time", replay("dataStore: pg\n"), "spec.backupTime: Required value"),
		reject("ErasureReplay/backup time 9999-12-31", replay("dataStore: pg\nbackupTime: \"9999-12-31T00:00:00Z\"\n"), msgDate),
		reject("ErasureReplay/DataStore name with a path", replay("dataStore: \"../kube-system/pg\"\nbackupTime: \"2026-01-01T00:00:00Z\"\n"), "spec.dataStore: Invalid value"),
		reject("ErasureReplay/batch size 0", replay("dataStore: pg\nbackupTime: \"2026-01-01T00:00:00Z\"\nbatchSize: 0\n"), "should be greater than or equal to 1"),
		reject("ErasureReplay/batch size 10001", replay("dataStore: pg\nbackupTime: \"2026-01-01T00:00:00Z\"\nbatchSize: 10001\n"), "should be less than or equal to 10000"),
		stall("ErasureReplay/DataStore not in the namespace", replay("dataStore: no-such-store\nbackupTime: \"2026-01-01T00:00:00Z\"\n"), "DataStoreNotReady", "DataStore no-such-store not found in namespace"),
		stall("ErasureReplay/Dataset on another DataStore", replay("dataStore: pg\nbackupTime: \"2026-01-01T00:00:00Z\"\ndatasets: [my-news]\n"), "InvalidSpec", "a replay scans the restored DataStore only"),
		stall("ErasureReplay/backup time in the future", replay("dataStore: pg\nbackupTime: \"2200-01-01T00:00:00Z\"\n"), "InvalidSpec", "spec.backupTime is in the future"),
		// --- LegalHold --------------------------------------------------------------
		reject("LegalHold/expiresAt 9999-12-31", hold("datasets: [pg-shop]\nexpiresAt: \"9999-12-31T23:59:59Z\"\n"), msgDate),
		reject("LegalHold/expiresAt 2201-01-01", hold("datasets: [pg-shop]\nexpiresAt: \"2201-01-01T00:00:00Z\"\n"), msgDate),
		reject("LegalHold/expiresAt 1960-01-01", hold("datasets: [pg-shop]\nexpiresAt: \"1960-01-01T00:00:00Z\"\n"), msgDate),
		reject("LegalHold/subject with a NUL byte", hold("subjects: [{type: email, value: \"a\\u0000b\"}]\n"), msgControl),
		reject("LegalHold/subject with a line break", hold("subjects: [{type: email, value: \"a\\nb\"}]\n"), msgControl),
		reject("LegalHold/no scope", hold("reason: case 42\n"), "a hold needs a scope"),
		reject("LegalHold/subjects Secret in another namespace", hold("subjectsSecretRef: {name: held, namespace: kube-system}\n"), msgSameNS),
		reject("LegalHold/reason longer than 512", hold("datasets: [pg-shop]\nreason: \""+strings.Repeat("x", 513)+"\"\n"), "Too long"),
		reject("LegalHold/bad category", hold("categories: [\"Contact Data\"]\n"), "should match '^[a-z][a-z0-9_-]*$'"),
		// Scoped to my-news, so they block only the request there.
		stall("LegalHold/subjects Secret missing", hold("datasets: [my-news]\nsubjectsSecretRef: {name: no-such-held}\n"), "SecretNotFound", "no-such-held"),
		stall("LegalHold/subjects Secret value with a control character", hold("datasets: [my-news]\nsubjectsSecretRef: {name: bad-hold-subjects}\n"), "InvalidIdentity", "Secret bad-hold-subjects, key email: a value contains a NUL or other control character"),
		stall("LegalHold/subjects Secret key that is no identity type", hold("datasets: [my-news]\nsubjectsSecretRef: {name: bad-type-identities}\n"), "InvalidIdentity", "is not an identity type"),
		// The base LegalHold broken-hold (subjects Secret missing) and the
		// holds above cover my-news: a request there waits, and says why.
		stall("DeletionRequest/in the scope of a hold whose Secret is missing", request("subject: {identities: [{type: email, value: a@example.com}]}\nreason: SubjectRequest\nscope: {datasets: [my-news]}\n"), "LegalHold", "can be read: "),

		// --- PurgeJob ----------------------------------------------------------------
		// A PurgeJob a user creates carries no signature of the manager:
		// refused before anything runs (UnsignedPurgeJob), whatever it asks.
		// (config/admission also refuses its creation in a cluster; envtest
		// runs without the admission policies, so the manager's check shows.)
		reject("PurgeJob/cutoff 9999-12-31", purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\ncutoff: \"9999-12-31T00:00:00Z\"\noperations: [{collection: users, action: Delete, byAge: true}]\n"), msgDate),
		reject("PurgeJob/operation cutoff 2500-01-01", purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\noperations: [{collection: users, action: Delete, byAge: true, cutoff: \"2500-01-01T00:00:00Z\"}]\n"), msgDate),
		reject("PurgeJob/byAge without cutoff", purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\noperations: [{collection: users, action: Delete, byAge: true}]\n"), "operations byAge need a cutoff"),
		reject("PurgeJob/Anonymize without fields", purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\ncutoff: \"2021-01-01T00:00:00Z\"\noperations: [{collection: users, action: Anonymize, byAge: true}]\n"), "action Anonymize needs fields"),
		reject("PurgeJob/bySubject without subjects", purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\noperations: [{collection: users, action: Delete, bySubject: true}]\n"), "operations bySubject need subjectsSecretRef"),
		reject("PurgeJob/operation selecting nothing", purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\noperations: [{collection: users, action: Delete}]\n"), "an operation selects records byAge, bySubject, or both"),
		reject("PurgeJob/batchSize 0", purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\nbatchSize: 0\ncutoff: \"2021-01-01T00:00:00Z\"\noperations: [{collection: users, action: Delete, byAge: true}]\n"), "should be greater than or equal to 1"),
		reject("PurgeJob/subjects Secret in another namespace", purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\nsubjectsSecretRef: {name: s, namespace: kube-system}\noperations: [{collection: users, action: Delete, bySubject: true}]\n"), msgSameNS),
		stall("PurgeJob/writes role=admin into an undeclared column",
			purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\ncutoff: \"2030-01-01T00:00:00Z\"\noperations: [{collection: users, action: Anonymize, byAge: true, fields: [{name: role, strategy: Fixed, replacement: admin}]}]\n"),
			"UnsignedPurgeJob", ""),
		stall("PurgeJob/writes its own text into a declared field",
			purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\ncutoff: \"2030-01-01T00:00:00Z\"\noperations: [{collection: orders, action: Anonymize, byAge: true, fields: [{name: shipping, strategy: Fixed, replacement: \"role=admin\"}]}]\n"),
			"UnsignedPurgeJob", ""),
		stall("PurgeJob/collection the Dataset does not declare",
			purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\ncutoff: \"2030-01-01T00:00:00Z\"\noperations: [{collection: pg_authid, action: Delete, byAge: true}]\n"),
			"UnsignedPurgeJob", ""),
		stall("PurgeJob/missing Dataset",
			purgeJob("datasetRef: {name: no-such-dataset}\nmode: Enforce\ncutoff: \"2030-01-01T00:00:00Z\"\noperations: [{collection: users, action: Delete, byAge: true}]\n"),
			"UnsignedPurgeJob", ""),
		stall("PurgeJob/cutoff in 2100 empties orders and users",
			purgeJob("datasetRef: {name: pg-shop}\nmode: Enforce\ncutoff: \"2100-01-01T00:00:00Z\"\noperations: [{collection: orders, action: Delete, byAge: true}, {collection: users, action: Delete, byAge: true}]\n"),
			"UnsignedPurgeJob", ""),
		stall("PurgeJob/safety.maxRows 1 released at creation",
			obj("PurgeJob", "annotations: {retention.lethe.dev/release-safety-limit: \"true\"}", "datasetRef: {name: pg-shop}\nmode: Enforce\ncutoff: \"2030-01-01T00:00:00Z\"\nsafety: {maxRows: 1}\noperations: [{collection: orders, action: Delete, byAge: true}]\n"),
			"UnsignedPurgeJob", ""),
		// (A job naming a request that does not exist is refused and then
		// removed with the requests it names; controllers tests cover a
		// forged job naming a real request.)
		stall("PurgeJob/copying a signature annotation from elsewhere",
			obj("PurgeJob", "annotations: {retention.lethe.dev/signature: \"v1:0000000000000000000000000000000000000000000000000000000000000000\"}", "datasetRef: {name: pg-shop}\nmode: Enforce\ncutoff: \"2030-01-01T00:00:00Z\"\noperations: [{collection: users, action: Delete, byAge: true}]\n"),
			"UnsignedPurgeJob", ""),
	}
}
