package admission

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// admissionCase is one manifest sent to the real apiserver. A rejected case
// names substrings the error must contain: the message a user sees in
// `kubectl apply`, and where useful the field path.
type admissionCase struct {
	name     string
	manifest string
	wantErr  bool
	want     []string
	// updates run in order against the created object (the case must be
	// accepted first).
	updates []update
	// blocked names the API change (reported to the lead) this case waits
	// for. A blocked case still runs and fails until the change lands; the
	// failure message says so.
	blocked string
}

// update changes an accepted object and sends it back, either as a normal
// update or through the status subresource.
type update struct {
	desc    string
	status  bool
	mutate  func(u *unstructured.Unstructured)
	wantErr bool
	want    []string
}

// Messages of the CRDs' CEL rules and OpenAPI checks, as a user sees them.
const (
	msgIdentifier    = "should match '^[A-Za-z_][A-Za-z0-9_]*$'"
	msgRetentionDur  = "must be a positive duration with one unit: h, d, w, mo or y"
	msgWaitDur       = "must be a non-negative duration with one unit: h, d, w, mo or y"
	msgTimeout       = "must be a positive duration with one unit: ms, s or m"
	msgCron          = "must be a five-field cron expression (minute hour day-of-month month day-of-week, for example '0 3 * * *') or @daily, @weekly, @monthly, @yearly, @hourly"
	msgTimeZone      = "must be an IANA time zone name such as UTC, Europe/Berlin or Asia/Shanghai"
	msgWindowDur     = "must be hours and minutes such as 4h, 30m or 1h30m, more than 0 and at most 168h (7 days)"
	msgSameNamespace = "Secret references are same-namespace only: remove namespace"
	msgKeyPattern    = "must contain only letters, digits and _ : . / - * { } (placeholders are written {identity_type})"
	msgCategory      = "should match '^[a-z][a-z0-9_-]*$'"
	msgIdentityType  = "should match '^[a-z][a-z0-9_]*$'"
	msgObjectName    = "should match '^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$'"
	msgUnsupported   = "Unsupported value"
	msgRequired      = "Required value"
)

// Blocked-on-API-fix markers (see the report to the lead; each names the
// marker change that makes the case pass).
const (
	blockedHMACKey     = `api/v1alpha1/dataset_types.go DatasetSpec: add a rule requiring hmacKeySecretRef when any field uses strategy HMAC`
	blockedHost        = `api/v1alpha1/datastore_types.go DataStoreSpec.Host: pattern allows "host:port" and rejects the IPv6 address "::1"; use a hostname pattern without ':' or isIP(self)`
	blockedWildcardKey = `api/v1alpha1/dataset_types.go KeyPattern: reject a pattern made only of wildcards and separators ("*" selects the whole Redis database)`
	blockedMinorWindow = `api/v1alpha1/deletionrequest_types.go DeletionRequestSpec: reject a non-zero reviewWindow with reason Minor (documented as always immediate, silently ignored today)`
)

// obj builds a manifest of a Lethe kind from an (indented) spec block.
func obj(kind, spec string) string {
	return "apiVersion: " + apiVersion + "\nkind: " + kind + "\nmetadata:\n  name: placeholder\nspec:\n" + indent(dedent(spec), "  ")
}

// dedent removes the common leading whitespace of the non-blank lines.
func dedent(s string) string {
	lines := strings.Split(strings.TrimLeft(strings.TrimRight(s, " \t\n"), "\n"), "\n")
	min := -1
	for _, l := range lines {
		if strings.TrimSpace(l) == "" {
			continue
		}
		n := len(l) - len(strings.TrimLeft(l, " \t"))
		if min < 0 || n < min {
			min = n
		}
	}
	for i, l := range lines {
		switch {
		case strings.TrimSpace(l) == "":
			lines[i] = ""
		case min > 0:
			lines[i] = l[min:]
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

func indent(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "\n") + "\n"
}

// setField returns a mutation setting a nested field.
func setField(value interface{}, path ...string) func(u *unstructured.Unstructured) {
	return func(u *unstructured.Unstructured) {
		if err := unstructured.SetNestedField(u.Object, value, path...); err != nil {
			panic(err)
		}
	}
}

// Building blocks shared by several cases.
const (
	validPostgres = `
		type: PostgreSQL
		host: shop-postgres.shop.svc.cluster.local
		port: 5432
		database: shop
		credentialsSecretRef: {name: shop-postgres-credentials}
		limits: {maxConnections: 4, statementTimeout: 5s, lockTimeout: 1s}
	`
	// pgHealth is a PostgreSQL DataStore without limits, for cases that set
	// limits.health.
	pgHealth   = "type: PostgreSQL\nhost: shop-postgres\ndatabase: shop\ncredentialsSecretRef: {name: c}\n"
	validRules = `
		rules:
		- name: browsing_logs_180d
		  collections: [browsing_logs]
		  olderThan: 180d
		  action: Delete
	`
)

// policy builds a RetentionPolicy spec from the lines that vary.
func policy(lines string) string {
	return obj("RetentionPolicy", "datasetRef: {name: shop}\n"+dedent(lines))
}

// policyWith builds a valid RetentionPolicy with one schedule and time zone.
func policyWith(schedule, tz string) string {
	return policy(fmt.Sprintf("mode: Enforce\nschedule: %q\ntimeZone: %q\n", schedule, tz) + dedent(validRules))
}

// policyRule builds a valid RetentionPolicy around one rule.
func policyRule(rule string) string {
	return policy("mode: DryRun\nschedule: \"0 3 * * *\"\nrules:\n" + indent(dedent(rule), "  "))
}

// dataset builds a Dataset of shop-postgres with the given collections.
func dataset(collections string) string {
	return obj("Dataset", "dataStoreRef: {name: shop-postgres}\ncollections:\n"+dedent(collections))
}

// deletion builds a DeletionRequest spec.
func deletion(spec string) string { return obj("DeletionRequest", spec) }

// hold builds a LegalHold spec.
func hold(spec string) string { return obj("LegalHold", spec) }

// purge builds a PurgeJob of Dataset shop with the given lines.
func purge(lines string) string {
	return obj("PurgeJob", "datasetRef: {name: shop}\nmode: Enforce\n"+dedent(lines))
}

func cases() []admissionCase {
	return append(boundaryCases(), []admissionCase{
		// ---------------------------------------------------------------- DataStore
		{name: "DataStore/PostgreSQL with credentials and limits is accepted",
			manifest: obj("DataStore", validPostgres)},
		{name: "DataStore/MySQL with defaults is accepted",
			manifest: obj("DataStore", `
				type: MySQL
				host: 10.0.12.7
				database: shop_orders
				tls: VerifyFull
				credentialsSecretRef: {name: shop-mysql-credentials}
			`)},
		{name: "DataStore/Redis with redisDB is accepted",
			manifest: obj("DataStore", `
				type: Redis
				host: shop-redis.shop.svc
				redisDB: 2
				credentialsSecretRef: {name: shop-redis-credentials}
			`)},
		{name: "DataStore/S3 with endpoint and bucket is accepted",
			manifest: obj("DataStore", `
				type: S3
				tls: Disable
				s3:
				  endpoint: http://minio.storage.svc:9000
				  region: eu-central-1
				  bucket: shop-uploads
				  forcePathStyle: true
				credentialsSecretRef: {name: shop-s3-credentials}
			`)},
		{name: "DataStore/S3 http endpoint without tls Disable is rejected",
			manifest: obj("DataStore", "type: S3\ns3: {endpoint: \"http://minio.storage.svc:9000\", bucket: shop-uploads}\n"),
			wantErr:  true, want: []string{"an http:// S3 endpoint sends requests in clear: set tls: Disable to say so, or use https"}},
		{name: "DataStore/windows across midnight, in a zone, with erasures waiting too, are accepted",
			manifest: obj("DataStore", dedent(validPostgres)+"\nwindows:\n- {schedule: \"0 22 * * *\", duration: 4h, timeZone: Europe/Berlin}\n- {schedule: \"30 1 * * SAT\", duration: 1h30m}\n- {schedule: \"@daily\", duration: 168h}\nwindowsApplyTo: All\n")},
		{name: "DataStore/window with a bad cron expression is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\nwindows:\n- {schedule: \"0 25 * * *\", duration: 4h}\n"),
			wantErr:  true, want: []string{"spec.windows[0].schedule", msgCron}},
		{name: "DataStore/window in an unknown zone is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\nwindows:\n- {schedule: \"0 1 * * *\", duration: 4h, timeZone: Europe/Atlantis}\n"),
			wantErr:  true, want: []string{"spec.windows[0].timeZone", msgTimeZone}},
		{name: "DataStore/window longer than 7 days is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\nwindows:\n- {schedule: \"0 1 * * *\", duration: 169h}\n"),
			wantErr:  true, want: []string{"spec.windows[0].duration", msgWindowDur}},
		{name: "DataStore/window of zero minutes is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\nwindows:\n- {schedule: \"0 1 * * *\", duration: 0m}\n"),
			wantErr:  true, want: []string{"spec.windows[0].duration", msgWindowDur}},
		{name: "DataStore/window duration in days is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\nwindows:\n- {schedule: \"0 1 * * *\", duration: 1d}\n"),
			wantErr:  true, want: []string{"spec.windows[0].duration", msgWindowDur}},
		{name: "DataStore/windowsApplyTo other than RetentionRuns or All is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\nwindowsApplyTo: Erasures\n"),
			wantErr:  true, want: []string{"spec.windowsApplyTo", msgUnsupported}},
		{name: "DataStore/tls Prefer (falls back to a cleartext password) is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\ntls: Prefer\n"),
			wantErr:  true, want: []string{"spec.tls", msgUnsupported}},
		{name: "DataStore/PostgreSQL without credentialsSecretRef is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: db.shop.svc\ndatabase: shop\n"),
			wantErr:  true, want: []string{"types PostgreSQL and MySQL need credentialsSecretRef"}},
		{name: "DataStore/caBundleSecretRef with tls Require is rejected",
			manifest: obj("DataStore", "type: Redis\nhost: shop-redis\ntls: Require\ncaBundleSecretRef: {name: shop-ca, key: ca.crt}\n"),
			wantErr:  true, want: []string{"caBundleSecretRef is only used with tls VerifyFull"}},
		{name: "DataStore/Redis with a CA bundle, verified TLS by default, is accepted",
			manifest: obj("DataStore", "type: Redis\nhost: shop-redis\ncaBundleSecretRef: {name: shop-ca, key: ca.crt}\n")},
		{name: "DataStore/S3 without s3 section is rejected",
			manifest: obj("DataStore", "type: S3\n"),
			wantErr:  true, want: []string{"type S3 needs the s3 section (bucket)"}},
		{name: "DataStore/s3 section on PostgreSQL is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\ns3: {bucket: shop-uploads}\n"),
			wantErr:  true, want: []string{"the s3 section is only for type S3"}},
		{name: "DataStore/PostgreSQL without database is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: db.shop.svc\n"),
			wantErr:  true, want: []string{"types PostgreSQL and MySQL need database"}},
		{name: "DataStore/MySQL without host is rejected",
			manifest: obj("DataStore", "type: MySQL\ndatabase: shop\n"),
			wantErr:  true, want: []string{"host is required for PostgreSQL, MySQL and Redis"}},
		{name: "DataStore/Redis with database instead of redisDB is rejected",
			manifest: obj("DataStore", "type: Redis\nhost: shop-redis\ndatabase: sessions\n"),
			wantErr:  true, want: []string{"Redis selects its database with redisDB, not database"}},
		{name: "DataStore/unknown type Oracle is rejected",
			manifest: obj("DataStore", "type: Oracle\nhost: ora.shop.svc\ndatabase: shop\n"),
			wantErr:  true, want: []string{"spec.type", msgUnsupported, `"Oracle"`}},
		{name: "DataStore/credentialsSecretRef into another namespace is rejected",
			manifest: obj("DataStore", `
				type: PostgreSQL
				host: shop-postgres
				database: shop
				credentialsSecretRef: {name: shop-postgres-credentials, namespace: kube-system}
			`),
			wantErr: true, want: []string{"spec.credentialsSecretRef", msgSameNamespace}},
		{name: "DataStore/database name carrying ; DROP TABLE is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\ndatabase: \"shop; DROP TABLE users\"\n"),
			wantErr:  true, want: []string{"spec.database", msgIdentifier}},
		{name: "DataStore/host with shell metacharacters is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: \"db;rm -rf /\"\ndatabase: shop\n"),
			wantErr:  true, want: []string{"spec.host", "must be a host name or IP address"}},
		{name: "DataStore/host with a port is rejected (the port goes in port)",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: db.shop.svc:5432\ndatabase: shop\n"),
			wantErr:  true, want: []string{"spec.host", "must be a host name or IP address"},
			blocked: blockedHost},
		{name: "DataStore/IPv6 loopback host ::1 is accepted",
			manifest: obj("DataStore", "type: Redis\nhost: \"::1\"\nport: 6390\n"),
			blocked:  blockedHost},
		{name: "DataStore/S3 endpoint with embedded credentials is rejected",
			manifest: obj("DataStore", "type: S3\ns3: {endpoint: \"https://AKIAEXAMPLE:secret@s3.example.com\", bucket: shop-uploads}\n"),
			wantErr:  true, want: []string{"spec.s3.endpoint", "must be an http or https URL without credentials"}},
		{name: "DataStore/S3 bucket with uppercase and underscore is rejected",
			manifest: obj("DataStore", "type: S3\ns3: {bucket: Shop_Uploads}\n"),
			wantErr:  true, want: []string{"spec.s3.bucket", "must be a valid bucket name"}},
		{name: "DataStore/statementTimeout 5 seconds (garbage) is rejected",
			manifest: obj("DataStore", dedent(validPostgres)+"\nprobeInterval: 5 seconds\n"),
			wantErr:  true, want: []string{"spec.probeInterval", msgTimeout}},
		{name: "DataStore/lockTimeout 0s is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\ndatabase: shop\nlimits: {lockTimeout: 0s}\n"),
			wantErr:  true, want: []string{"spec.limits.lockTimeout", msgTimeout}},
		{name: "DataStore/health limits of PostgreSQL are accepted",
			manifest: obj("DataStore", pgHealth+"limits: {health: {checkInterval: 250ms, maxReplicationLag: 5s, maxReplicationLagBytes: 64Mi, ignoredStandbys: [dr], maxActiveSessions: 16, maxLockWaiters: 4}}\n")},
		{name: "DataStore/maxReplicationLag 0 (no limit) is accepted",
			manifest: obj("DataStore", pgHealth+"limits: {health: {maxReplicationLag: \"0\"}}\n")},
		{name: "DataStore/maxReplicationLag 10 (no unit) is rejected",
			manifest: obj("DataStore", pgHealth+"limits: {health: {maxReplicationLag: \"10\"}}\n"),
			wantErr:  true, want: []string{"spec.limits.health.maxReplicationLag", "must be 0 (no limit) or a positive duration"}},
		{name: "DataStore/MySQL replicas on PostgreSQL are rejected",
			manifest: obj("DataStore", pgHealth+"limits: {health: {replicas: [{host: replica-1}]}}\n"),
			wantErr:  true, want: []string{"limits.health.replicas and maxThreadsRunning are only for type MySQL"}},
		{name: "DataStore/maxActiveSessions on MySQL is rejected",
			manifest: obj("DataStore", "type: MySQL\nhost: shop-mysql\ndatabase: shop\ncredentialsSecretRef: {name: c}\nlimits: {health: {maxActiveSessions: 10}}\n"),
			wantErr:  true, want: []string{"maxActiveSessions and maxLockWaiters are only for type PostgreSQL"}},
		{name: "DataStore/MySQL replicas and maxThreadsRunning are accepted",
			manifest: obj("DataStore", "type: MySQL\nhost: shop-mysql\ndatabase: shop\ncredentialsSecretRef: {name: c}\nlimits: {health: {maxThreadsRunning: 25, replicas: [{host: replica-1, port: 3307, credentialsSecretRef: {name: replica-monitor}}]}}\n")},
		{name: "DataStore/replica host with a port is rejected",
			manifest: obj("DataStore", "type: MySQL\nhost: shop-mysql\ndatabase: shop\ncredentialsSecretRef: {name: c}\nlimits: {health: {replicas: [{host: \"replica-1:3306\"}]}}\n"),
			wantErr:  true, want: []string{"spec.limits.health.replicas[0].host", "must be a host name or IP address"}},
		{name: "DataStore/adaptive batch limits are accepted",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\ndatabase: shop\ncredentialsSecretRef: {name: creds}\nlimits: {targetBatchDuration: 100ms, minBatchSize: 500, maxBatchSize: 20000}\n")},
		{name: "DataStore/maxBatchSize alone below the default minimum is accepted",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\ndatabase: shop\ncredentialsSecretRef: {name: creds}\nlimits: {maxBatchSize: 50}\n")},
		{name: "DataStore/minBatchSize above maxBatchSize is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\ndatabase: shop\nlimits: {minBatchSize: 5000, maxBatchSize: 1000}\n"),
			wantErr:  true, want: []string{"spec.limits", "minBatchSize must not be above maxBatchSize"}},
		{name: "DataStore/targetBatchDuration 2m is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\ndatabase: shop\nlimits: {targetBatchDuration: 2m}\n"),
			wantErr:  true, want: []string{"spec.limits.targetBatchDuration", "must be at most 1m"}},
		{name: "DataStore/targetBatchDuration 61s is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\ndatabase: shop\nlimits: {targetBatchDuration: 61s}\n"),
			wantErr:  true, want: []string{"spec.limits.targetBatchDuration", "must be at most 1m"}},
		{name: "DataStore/targetBatchDuration 0ms is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\ndatabase: shop\nlimits: {targetBatchDuration: 0ms}\n"),
			wantErr:  true, want: []string{"spec.limits.targetBatchDuration", msgTimeout}},
		{name: "DataStore/port 0 is rejected",
			manifest: obj("DataStore", "type: PostgreSQL\nhost: shop-postgres\nport: 0\ndatabase: shop\n"),
			wantErr:  true, want: []string{"spec.port", "should be greater than or equal to 1"}},
		{name: "DataStore/misspelt field is rejected, not pruned",
			manifest: obj("DataStore", dedent(validPostgres)+"\ncredentialSecretRef: {name: typo}\n"),
			wantErr:  true, want: []string{`unknown field "spec.credentialSecretRef"`}},

		// ---------------------------------------------------------------- Dataset
		{name: "Dataset/SQL collections with identities, fields, strategies and references are accepted",
			manifest: obj("Dataset", `
				dataStoreRef: {name: shop-postgres}
				hmacKeySecretRef: {name: shop-lethe-hmac, key: hmac-key}
				collections:
				- name: users
				  identities: [{type: user_id, field: id}, {type: email, field: email}, {type: phone, field: phone}]
				  fields:
				  - {name: email, categories: [contact], anonymize: {strategy: HMAC}}
				  - {name: phone, categories: [contact], anonymize: {strategy: PartialMask, keepFirst: 3, keepLast: 4}}
				  - {name: national_id, categories: [identity-document], anonymize: {strategy: Redact}}
				- name: orders
				  timestampField: created_at
				  timestampTimeZone: America/New_York
				  action: Anonymize
				  fields:
				  - {name: shipping_name, categories: [contact], anonymize: {strategy: Fixed, replacement: "[removed]"}}
				  - {name: paid_at, anonymize: {strategy: Generalize, granularity: Month}}
				  - {name: user_id, anonymize: {strategy: "Null"}}
				  references: [{field: user_id, collection: users, targetField: id}]
			`)},
		{name: "Dataset/table name carrying ; DROP TABLE is rejected",
			manifest: dataset(`
				- name: users
				  table: "users; DROP TABLE users"
			`),
			wantErr: true, want: []string{"spec.collections[0].table", msgIdentifier}},
		{name: "Dataset/collection name with a single quote is rejected",
			manifest: dataset(`
				- name: "users' OR '1'='1"
			`),
			wantErr: true, want: []string{"spec.collections[0].name", msgIdentifier}},
		{name: "Dataset/column name with double quotes is rejected",
			manifest: dataset(`
				- name: users
				  fields: [{name: '"email"', categories: [contact]}]
			`),
			wantErr: true, want: []string{"spec.collections[0].fields[0].name", msgIdentifier}},
		{name: "Dataset/column name with whitespace is rejected",
			manifest: dataset(`
				- name: users
				  identities: [{type: email, field: "e mail"}]
			`),
			wantErr: true, want: []string{"spec.collections[0].identities[0].field", msgIdentifier}},
		{name: "Dataset/timestamp column with a -- comment is rejected",
			manifest: dataset(`
				- name: browsing_logs
				  timestampField: "viewed_at--"
			`),
			wantErr: true, want: []string{"spec.collections[0].timestampField", msgIdentifier}},
		{name: "Dataset/schema-qualified table with a dot is rejected",
			manifest: dataset(`
				- name: users
				  table: public.users
			`),
			wantErr: true, want: []string{"spec.collections[0].table", msgIdentifier}},
		{name: "Dataset/reference target with a dot is rejected",
			manifest: dataset(`
				- name: devices
				  references: [{field: user_id, collection: users, targetField: users.id}]
			`),
			wantErr: true, want: []string{"spec.collections[0].references[0].targetField", msgIdentifier}},
		{name: "Dataset/unknown anonymization strategy is rejected",
			manifest: dataset(`
				- name: users
				  fields: [{name: email, anonymize: {strategy: Scramble}}]
			`),
			wantErr: true, want: []string{"spec.collections[0].fields[0].anonymize.strategy", msgUnsupported, `"Scramble"`}},
		{name: "Dataset/action Anonymize without fields is rejected",
			manifest: dataset(`
				- name: orders
				  action: Anonymize
			`),
			wantErr: true, want: []string{"spec.collections[0]", "action Anonymize needs at least one field with an anonymize strategy"}},
		{name: "Dataset/action Anonymize with fields but no strategy is rejected",
			manifest: dataset(`
				- name: orders
				  action: Anonymize
				  fields: [{name: shipping_name, categories: [contact]}]
			`),
			wantErr: true, want: []string{"action Anonymize needs at least one field with an anonymize strategy"}},
		{name: "Dataset/strategy Fixed without replacement is rejected",
			manifest: dataset(`
				- name: users
				  fields: [{name: display_name, anonymize: {strategy: Fixed}}]
			`),
			wantErr: true, want: []string{"spec.collections[0].fields[0].anonymize", "strategy Fixed needs replacement"}},
		{name: "Dataset/replacement with strategy Null is rejected",
			manifest: dataset(`
				- name: users
				  fields: [{name: display_name, anonymize: {strategy: "Null", replacement: x}}]
			`),
			wantErr: true, want: []string{"replacement is only used by strategy Fixed"}},
		{name: "Dataset/keepFirst with strategy Redact is rejected",
			manifest: dataset(`
				- name: users
				  fields: [{name: phone, anonymize: {strategy: Redact, keepFirst: 3}}]
			`),
			wantErr: true, want: []string{"keepFirst and keepLast are only used by strategy PartialMask"}},
		{name: "Dataset/granularity with strategy Redact is rejected",
			manifest: dataset(`
				- name: users
				  fields: [{name: email, anonymize: {strategy: Redact, granularity: Day}}]
			`),
			wantErr: true, want: []string{"granularity is only used by strategy Generalize"}},
		{name: "Dataset/strategy HMAC without hmacKeySecretRef is rejected",
			manifest: dataset(`
				- name: users
				  fields: [{name: email, anonymize: {strategy: HMAC}}]
			`),
			wantErr: true, want: []string{"hmacKeySecretRef"},
			blocked: blockedHMACKey},
		{name: "Dataset/hmacKeySecretRef into another namespace is rejected",
			manifest: obj("Dataset", `
				dataStoreRef: {name: shop-postgres}
				hmacKeySecretRef: {name: shop-lethe-hmac, key: hmac-key, namespace: security}
				collections: [{name: users}]
			`),
			wantErr: true, want: []string{"spec.hmacKeySecretRef", msgSameNamespace}},
		{name: "Dataset/Redis key pattern with a space is rejected",
			manifest: dataset(`
				- name: sessions
				  keyPattern: "session:{user_id} *"
			`),
			wantErr: true, want: []string{"spec.collections[0].keyPattern", msgKeyPattern}},
		{name: "Dataset/Redis key pattern with a quote is rejected",
			manifest: dataset(`
				- name: sessions
				  keyPattern: "session:'{user_id}':*"
			`),
			wantErr: true, want: []string{"spec.collections[0].keyPattern", msgKeyPattern}},
		{name: "Dataset/Redis key pattern of only a wildcard is rejected",
			manifest: dataset(`
				- name: everything
				  keyPattern: "*"
				  timestampSource: IdleTime
			`),
			wantErr: true, want: []string{"spec.collections[0].keyPattern"},
			blocked: blockedWildcardKey},
		{name: "Dataset/Redis and S3 collections with placeholders are accepted",
			manifest: dataset(`
				- name: sessions
				  keyPattern: "session:{user_id}:*"
				  timestampSource: IdleTime
				  identities: [{type: user_id}]
				- name: carts
				  keyPattern: "cart:{user_id}"
				  timestampSource: HashField
				  timestampField: updated_at
				  fields: [{name: address, categories: [location], anonymize: {strategy: "Null"}}]
				- name: avatars
				  prefix: "avatars/{user_id}/"
				  timestampSource: LastModified
			`)},
		{name: "Dataset/keyPattern together with prefix is rejected",
			manifest: dataset(`
				- name: sessions
				  keyPattern: "session:{user_id}"
				  prefix: "sessions/{user_id}/"
			`),
			wantErr: true, want: []string{"a collection is a table, a keyPattern or a prefix, not several"}},
		{name: "Dataset/keyPattern together with table is rejected",
			manifest: dataset(`
				- name: sessions
				  table: sessions
				  keyPattern: "session:{user_id}"
			`),
			wantErr: true, want: []string{"table and schema are only for SQL collections"}},
		{name: "Dataset/S3 prefix starting with / is rejected",
			manifest: dataset(`
				- name: avatars
				  prefix: "/avatars/{user_id}/"
			`),
			wantErr: true, want: []string{"spec.collections[0].prefix", "must not start with /"}},
		{name: "Dataset/timestampSource Column without timestampField is rejected",
			manifest: dataset(`
				- name: browsing_logs
				  timestampSource: Column
			`),
			wantErr: true, want: []string{"timestampSource Column and HashField need timestampField"}},
		{name: "Dataset/unknown timestampTimeZone Mars/Olympus is rejected",
			manifest: dataset(`
				- name: browsing_logs
				  timestampField: viewed_at
				  timestampTimeZone: Mars/Olympus
			`),
			wantErr: true, want: []string{"spec.collections[0].timestampTimeZone", msgTimeZone}},
		{name: "Dataset/category with uppercase and space is rejected",
			manifest: dataset(`
				- name: users
				  categories: ["Contact Info"]
			`),
			wantErr: true, want: []string{"spec.collections[0].categories[0]", msgCategory}},
		{name: "Dataset/identity type E-Mail is rejected",
			manifest: dataset(`
				- name: users
				  identities: [{type: E-Mail, field: email}]
			`),
			wantErr: true, want: []string{"spec.collections[0].identities[0].type", msgIdentityType}},
		{name: "Dataset/duplicate collection names are rejected",
			manifest: dataset(`
				- name: users
				- name: users
			`),
			wantErr: true, want: []string{"spec.collections[1]", "Duplicate value"}},
		{name: "Dataset/no collections is rejected",
			manifest: obj("Dataset", "dataStoreRef: {name: shop-postgres}\ncollections: []\n"),
			wantErr:  true, want: []string{"spec.collections", "should have at least 1 items"}},
		{name: "Dataset/dataStoreRef with an invalid object name is rejected",
			manifest: obj("Dataset", "dataStoreRef: {name: Shop_Postgres}\ncollections: [{name: users}]\n"),
			wantErr:  true, want: []string{"spec.dataStoreRef.name", msgObjectName}},

		// ---------------------------------------------------------------- RetentionPolicy
		{name: "RetentionPolicy/nightly Enforce in Asia/Shanghai with safety limits is accepted",
			manifest: policy(`
				mode: Enforce
				schedule: "0 3 * * *"
				timeZone: Asia/Shanghai
				startingDeadlineSeconds: 3600
				rules:
				- {name: browsing_logs_180d, collections: [browsing_logs], olderThan: 180d, action: Delete}
				- {name: device_identifiers_90d, categories: [device], olderThan: 90d, action: Anonymize}
				- {name: orders_3y, collections: [orders, order_items], olderThan: 3y, action: Anonymize}
				- {name: support_18mo, collections: [support_messages], olderThan: 18mo, action: Delete}
				- {name: sessions_36h, collections: [sessions], olderThan: 36h, action: Delete}
				safety: {maxRows: 100000, maxPercent: 30}
				batchSize: 5000
			`)},
		{name: "RetentionPolicy/Anonymize rule with field overrides is accepted",
			manifest: policyRule(`
				- name: orders_3y
				  collections: [orders]
				  olderThan: 3y
				  action: Anonymize
				  fields:
				  - {name: shipping_name, strategy: Fixed, replacement: "[removed]"}
				  - {name: shipping_phone, strategy: PartialMask, keepFirst: 3, keepLast: 4}
				  - {name: paid_at, strategy: Generalize, granularity: Year}
			`)},
		{name: "RetentionPolicy/cron */15 * * * * is accepted",
			manifest: policyWith("*/15 * * * *", "UTC")},
		{name: "RetentionPolicy/cron 0 3 * * MON-FRI in America/New_York is accepted",
			manifest: policyWith("0 3 * * MON-FRI", "America/New_York")},
		{name: "RetentionPolicy/cron @daily is accepted",
			manifest: policyWith("@daily", "Europe/Berlin")},
		{name: "RetentionPolicy/cron 0 2 1-7 JAN,JUL SUN with lists and ranges is accepted",
			manifest: policyWith("0 2 1-7 JAN,JUL SUN", "UTC")},
		{name: "RetentionPolicy/cron 61 * * * * is rejected",
			manifest: policyWith("61 * * * *", "UTC"),
			wantErr:  true, want: []string{"spec.schedule", msgCron}},
		{name: "RetentionPolicy/cron every day is rejected",
			manifest: policyWith("every day", "UTC"),
			wantErr:  true, want: []string{"spec.schedule", msgCron}},
		{name: "RetentionPolicy/cron with 6 fields (seconds) is rejected",
			manifest: policyWith("0 0 3 * * *", "UTC"),
			wantErr:  true, want: []string{"spec.schedule", msgCron}},
		{name: "RetentionPolicy/cron hour 24 is rejected",
			manifest: policyWith("0 24 * * *", "UTC"),
			wantErr:  true, want: []string{"spec.schedule", msgCron}},
		{name: "RetentionPolicy/time zone Mars/Olympus is rejected",
			manifest: policyWith("0 3 * * *", "Mars/Olympus"),
			wantErr:  true, want: []string{"spec.timeZone", msgTimeZone}},
		{name: "RetentionPolicy/time zone Local is rejected",
			manifest: policyWith("0 3 * * *", "Local"),
			wantErr:  true, want: []string{"spec.timeZone", msgTimeZone}},
		{name: "RetentionPolicy/missing mode is rejected",
			manifest: policy(`schedule: "0 3 * * *"` + "\n" + dedent(validRules)),
			wantErr:  true, want: []string{"spec.mode", msgRequired}},
		{name: "RetentionPolicy/mode enforce (lowercase) is rejected",
			manifest: policy("mode: enforce\nschedule: \"0 3 * * *\"\n" + dedent(validRules)),
			wantErr:  true, want: []string{"spec.mode", msgUnsupported, `"enforce"`}},
		{name: "RetentionPolicy/duplicate rule names are rejected",
			manifest: policyRule(`
				- {name: logs, collections: [browsing_logs], olderThan: 180d, action: Delete}
				- {name: logs, collections: [support_messages], olderThan: 2y, action: Delete}
			`),
			wantErr: true, want: []string{"rule names must be unique"}},
		{name: "RetentionPolicy/rule selecting nothing is rejected",
			manifest: policyRule(`
				- {name: nothing, olderThan: 180d, action: Delete}
			`),
			wantErr: true, want: []string{"spec.rules[0]", "a rule selects collections or categories (at least one)"}},
		{name: "RetentionPolicy/rule with empty collections and categories is rejected",
			manifest: policyRule(`
				- {name: nothing, collections: [], categories: [], olderThan: 180d, action: Delete}
			`),
			wantErr: true, want: []string{"a rule selects collections or categories (at least one)"}},
		{name: "RetentionPolicy/olderThan -5d is rejected",
			manifest: policyRule(`- {name: logs, collections: [browsing_logs], olderThan: -5d, action: Delete}`),
			wantErr:  true, want: []string{"spec.rules[0].olderThan", msgRetentionDur}},
		{name: "RetentionPolicy/olderThan 0d is rejected",
			manifest: policyRule(`- {name: logs, collections: [browsing_logs], olderThan: 0d, action: Delete}`),
			wantErr:  true, want: []string{"spec.rules[0].olderThan", msgRetentionDur}},
		{name: "RetentionPolicy/olderThan 90 days is rejected",
			manifest: policyRule(`- {name: logs, collections: [browsing_logs], olderThan: 90 days, action: Delete}`),
			wantErr:  true, want: []string{"spec.rules[0].olderThan", msgRetentionDur}},
		{name: "RetentionPolicy/olderThan 6m (minutes or months?) is rejected",
			manifest: policyRule(`- {name: logs, collections: [browsing_logs], olderThan: 6m, action: Delete}`),
			wantErr:  true, want: []string{"spec.rules[0].olderThan", msgRetentionDur}},
		{name: "RetentionPolicy/olderThan 1.5y is rejected",
			manifest: policyRule(`- {name: logs, collections: [browsing_logs], olderThan: 1.5y, action: Delete}`),
			wantErr:  true, want: []string{"spec.rules[0].olderThan", msgRetentionDur}},
		{name: "RetentionPolicy/fields on a Delete rule are rejected",
			manifest: policyRule(`
				- name: logs
				  collections: [browsing_logs]
				  olderThan: 180d
				  action: Delete
				  fields: [{name: ip_address, strategy: Generalize}]
			`),
			wantErr: true, want: []string{"spec.rules[0]: Invalid value: fields are only used by action Anonymize"}},
		{name: "RetentionPolicy/field override Fixed without replacement is rejected",
			manifest: policyRule(`
				- name: orders_3y
				  collections: [orders]
				  olderThan: 3y
				  action: Anonymize
				  fields: [{name: shipping_name, strategy: Fixed}]
			`),
			wantErr: true, want: []string{"spec.rules[0].fields[0]: Invalid value: strategy Fixed needs replacement"}},
		{name: "RetentionPolicy/rule collection carrying ; DROP TABLE is rejected",
			manifest: policyRule(`- {name: logs, collections: ["browsing_logs; DROP TABLE users; --"], olderThan: 180d, action: Delete}`),
			wantErr:  true, want: []string{"spec.rules[0].collections[0]", msgIdentifier}},
		{name: "RetentionPolicy/maxPercent 150 is rejected",
			manifest: policy("mode: Enforce\nschedule: \"0 3 * * *\"\nsafety: {maxPercent: 150}\n" + dedent(validRules)),
			wantErr:  true, want: []string{"spec.safety.maxPercent", "should be less than or equal to 100"}},
		{name: "RetentionPolicy/concurrencyPolicy Allow is rejected",
			manifest: policy("mode: Enforce\nschedule: \"0 3 * * *\"\nconcurrencyPolicy: Allow\n" + dedent(validRules)),
			wantErr:  true, want: []string{"spec.concurrencyPolicy", msgUnsupported}},
		{name: "RetentionPolicy/no rules is rejected",
			manifest: policy("mode: Enforce\nschedule: \"0 3 * * *\"\nrules: []\n"),
			wantErr:  true, want: []string{"spec.rules", "should have at least 1 items"}},

		// ---------------------------------------------------------------- DeletionRequest
		{name: "DeletionRequest/account cancellation with identities from a Secret is accepted",
			manifest: deletion(`
				subject: {identitiesSecretRef: {name: deletion-7f3a9c-identities}}
				reason: AccountCancellation
				reviewWindow: 48h
				deadline: 30d
				scope: {datasets: [shop]}
			`)},
		{name: "DeletionRequest/minor found, inline identities, no review window is accepted",
			manifest: deletion(`
				subject:
				  identities: [{type: email, value: kid@example.com}, {type: user_id, value: "100977"}]
				reason: Minor
				reviewWindow: 0h
				scope: {selector: {matchLabels: {app.kubernetes.io/name: shop}}}
				overrides: [{dataset: shop, collection: orders, action: Delete}]
			`)},
		{name: "DeletionRequest/empty subject is rejected",
			manifest: deletion("subject: {}\nreason: SubjectRequest\n"),
			wantErr:  true, want: []string{"spec.subject", "a subject needs at least one identity: identities or identitiesSecretRef"}},
		{name: "DeletionRequest/subject with an empty identities list is rejected",
			manifest: deletion("subject: {identities: []}\nreason: SubjectRequest\n"),
			wantErr:  true, want: []string{"a subject needs at least one identity"}},
		{name: "DeletionRequest/identity with an empty value is rejected",
			manifest: deletion("subject: {identities: [{type: email, value: \"\"}]}\nreason: SubjectRequest\n"),
			wantErr:  true, want: []string{"spec.subject.identities[0].value", "should be at least 1 chars long"}},
		{name: "DeletionRequest/unknown reason is rejected",
			manifest: deletion("subject: {identitiesSecretRef: {name: ids}}\nreason: UserAsked\n"),
			wantErr:  true, want: []string{"spec.reason", msgUnsupported, `"UserAsked"`}},
		{name: "DeletionRequest/identitiesSecretRef into another namespace is rejected",
			manifest: deletion("subject: {identitiesSecretRef: {name: ids, namespace: other-team}}\nreason: SubjectRequest\n"),
			wantErr:  true, want: []string{"spec.subject.identitiesSecretRef", msgSameNamespace}},
		{name: "DeletionRequest/reviewWindow -48h is rejected",
			manifest: deletion("subject: {identitiesSecretRef: {name: ids}}\nreason: AccountCancellation\nreviewWindow: -48h\n"),
			wantErr:  true, want: []string{"spec.reviewWindow", msgWaitDur}},
		{name: "DeletionRequest/reviewWindow 2 days is rejected",
			manifest: deletion("subject: {identitiesSecretRef: {name: ids}}\nreason: AccountCancellation\nreviewWindow: 2 days\n"),
			wantErr:  true, want: []string{"spec.reviewWindow", msgWaitDur}},
		{name: "DeletionRequest/deadline 0d is rejected",
			manifest: deletion("subject: {identitiesSecretRef: {name: ids}}\nreason: SubjectRequest\ndeadline: 0d\n"),
			wantErr:  true, want: []string{"spec.deadline", msgRetentionDur}},
		{name: "DeletionRequest/scope with datasets and selector is rejected",
			manifest: deletion("subject: {identitiesSecretRef: {name: ids}}\nreason: SubjectRequest\nscope: {datasets: [shop], selector: {matchLabels: {team: shop}}}\n"),
			wantErr:  true, want: []string{"spec.scope", "use datasets or selector, not both"}},
		{name: "DeletionRequest/override collection with a quote is rejected",
			manifest: deletion("subject: {identitiesSecretRef: {name: ids}}\nreason: SubjectRequest\noverrides: [{dataset: shop, collection: \"orders'\", action: Delete}]\n"),
			wantErr:  true, want: []string{"spec.overrides[0].collection", msgIdentifier}},
		{name: "DeletionRequest/reason Minor with a 48h review window is rejected",
			manifest: deletion("subject: {identitiesSecretRef: {name: ids}}\nreason: Minor\nreviewWindow: 48h\n"),
			wantErr:  true, want: []string{"Minor"},
			blocked: blockedMinorWindow},
		{name: "DeletionRequest/spec is immutable, status and metadata are not",
			manifest: deletion(`
				subject: {identitiesSecretRef: {name: deletion-7f3a9c-identities}}
				reason: AccountCancellation
				reviewWindow: 48h
			`),
			updates: []update{
				{desc: "change reason", mutate: setField("SubjectRequest", "spec", "reason"),
					wantErr: true, want: []string{"spec is immutable: create a new DeletionRequest instead"}},
				{desc: "shorten the review window", mutate: setField("0h", "spec", "reviewWindow"),
					wantErr: true, want: []string{"spec is immutable: create a new DeletionRequest instead"}},
				{desc: "point at another identities Secret", mutate: setField("someone-else", "spec", "subject", "identitiesSecretRef", "name"),
					wantErr: true, want: []string{"spec is immutable"}},
				{desc: "status update by the controller", status: true, mutate: func(u *unstructured.Unstructured) {
					setField("Reviewing", "status", "phase")(u)
					setField(int64(1), "status", "observedGeneration")(u)
					setField("2026-11-24T12:00:00Z", "status", "notBefore")(u)
				}},
				{desc: "approval annotation", mutate: setField(map[string]interface{}{"retention.lethe.dev/approve": "true"}, "metadata", "annotations")},
			}},

		// ---------------------------------------------------------------- LegalHold
		{name: "LegalHold/subjects from a Secret with a case number and expiry is accepted",
			manifest: hold(`
				reason: "Case 2026-SH-0142: preservation order"
				subjectsSecretRef: {name: legal-hold-case-2026-sh-0142}
				datasets: [shop]
				expiresAt: "2027-12-31T23:59:59Z"
			`)},
		{name: "LegalHold/whole collections without subjects is accepted",
			manifest: hold(`
				reason: "Tax audit FY2025"
				collections: [orders, order_items]
			`)},
		{name: "LegalHold/without scope is rejected",
			manifest: hold("reason: \"Case 2026-SH-0142\"\nexpiresAt: \"2027-12-31T23:59:59Z\"\n"),
			wantErr:  true, want: []string{"a hold needs a scope: subjects, subjectsSecretRef, datasets, collections or categories"}},
		{name: "LegalHold/with empty scope lists is rejected",
			manifest: hold("reason: \"Case 2026-SH-0142\"\nsubjects: []\ndatasets: []\ncollections: []\ncategories: []\n"),
			wantErr:  true, want: []string{"a hold needs a scope"}},
		{name: "LegalHold/subjectsSecretRef into another namespace is rejected",
			manifest: hold("subjectsSecretRef: {name: case-subjects, namespace: legal}\n"),
			wantErr:  true, want: []string{"spec.subjectsSecretRef", msgSameNamespace}},
		{name: "LegalHold/subject with an unknown identity type format is rejected",
			manifest: hold("subjects: [{type: \"e-mail\", value: ada@example.com}]\n"),
			wantErr:  true, want: []string{"spec.subjects[0].type", msgIdentityType}},
		{name: "LegalHold/collection with a ; is rejected",
			manifest: hold("collections: [\"orders;\"]\n"),
			wantErr:  true, want: []string{"spec.collections[0]", msgIdentifier}},
		{name: "LegalHold/expiresAt that is not a timestamp is rejected",
			manifest: hold("datasets: [shop]\nexpiresAt: next year\n"),
			wantErr:  true, want: []string{"spec.expiresAt"}},

		// ---------------------------------------------------------------- PurgeJob
		{name: "PurgeJob/policy run with byAge Delete and Anonymize operations is accepted",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: browsing_logs, action: Delete, byAge: true}
				- collection: support_messages
				  action: Anonymize
				  byAge: true
				  fields: [{name: body, strategy: Redact}, {name: contact_email, strategy: HMAC}]
			`)},
		{name: "PurgeJob/deletion-request job bySubject is accepted",
			manifest: purge(`
				subjectsSecretRef: {name: deletion-7f3a9c-subjects}
				operations:
				- {collection: support_messages, action: Delete, bySubject: true}
				- {collection: devices, action: Delete, bySubject: true}
				- {collection: users, action: Delete, bySubject: true}
			`)},
		{name: "PurgeJob/byAge Delete with every boolean spelt out is accepted",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: browsing_logs, action: Delete, byAge: true, bySubject: false}
			`)},
		{name: "PurgeJob/byAge without cutoff is rejected",
			manifest: purge(`
				operations:
				- {collection: browsing_logs, action: Delete, byAge: true, bySubject: false}
			`),
			wantErr: true, want: []string{"spec: Invalid value: operations byAge need a cutoff (on the job or the operation)"}},
		{name: "PurgeJob/one byAge operation without a cutoff among others with one is rejected",
			manifest: purge(`
				operations:
				- {collection: browsing_logs, rule: logs_180d, action: Delete, byAge: true, cutoff: "2026-05-25T19:00:00Z"}
				- {collection: support_messages, rule: support_180d, action: Delete, byAge: true}
			`),
			wantErr: true, want: []string{"operations byAge need a cutoff (on the job or the operation)"}},
		{name: "PurgeJob/policy run with a cutoff and rule name per operation is accepted",
			manifest: purge(`
				operations:
				- {collection: browsing_logs, rule: browsing_logs_180d, action: Delete, byAge: true, cutoff: "2026-05-25T19:00:00Z"}
				- collection: devices
				  rule: device_identifiers_90d
				  action: Anonymize
				  byAge: true
				  cutoff: "2026-08-23T19:00:00Z"
				  fields: [{name: device_id, strategy: HMAC}, {name: ip_address, strategy: Generalize}]
				- collection: orders
				  rule: orders_3y
				  action: Anonymize
				  byAge: true
				  cutoff: "2023-11-21T19:00:00Z"
				  fields: [{name: shipping_name, strategy: Fixed, replacement: "[removed]"}, {name: user_id, strategy: "Null"}]
			`)},
		{name: "PurgeJob/operation rule name carrying ; DROP TABLE is rejected",
			manifest: purge(`
				operations:
				- {collection: browsing_logs, rule: "x; DROP TABLE users", action: Delete, byAge: true, cutoff: "2026-05-25T19:00:00Z"}
			`),
			wantErr: true, want: []string{"spec.operations[0].rule", msgIdentifier}},
		{name: "PurgeJob/bySubject without subjectsSecretRef is rejected",
			manifest: purge(`
				operations:
				- {collection: users, action: Delete, byAge: false, bySubject: true}
			`),
			wantErr: true, want: []string{"operations bySubject need subjectsSecretRef"}},
		{name: "PurgeJob/Anonymize operation without fields is rejected",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: orders, action: Anonymize, byAge: true, bySubject: false}
			`),
			wantErr: true, want: []string{"spec.operations[0]", "action Anonymize needs fields with their strategies"}},
		{name: "PurgeJob/Anonymize operation with an empty fields list is rejected",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: orders, action: Anonymize, byAge: true, bySubject: false, fields: []}
			`),
			wantErr: true, want: []string{"action Anonymize needs fields with their strategies"}},
		{name: "PurgeJob/operation selecting neither byAge nor bySubject is rejected with its message",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: browsing_logs, action: Delete}
			`),
			// Before the rules used has(), they errored ("no such key: byAge
			// evaluating rule: …") instead of giving their message.
			wantErr: true, want: []string{"spec.operations[0]: Invalid value: an operation selects records byAge, bySubject, or both"}},
		{name: "PurgeJob/operation with byAge and bySubject false is rejected",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: browsing_logs, action: Delete, byAge: false, bySubject: false}
			`),
			wantErr: true, want: []string{"an operation selects records byAge, bySubject, or both"}},
		{name: "PurgeJob/fields on a Delete operation are rejected",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: browsing_logs, action: Delete, byAge: true, bySubject: false, fields: [{name: url, strategy: "Null"}]}
			`),
			wantErr: true, want: []string{"spec.operations[0]: Invalid value: fields are only used by action Anonymize"}},
		{name: "PurgeJob/operation field with strategy Fixed and no replacement is rejected",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: orders, action: Anonymize, byAge: true, bySubject: false, fields: [{name: shipping_name, strategy: Fixed}]}
			`),
			wantErr: true, want: []string{"spec.operations[0].fields[0]: Invalid value: strategy Fixed needs replacement"}},
		{name: "PurgeJob/operation collection carrying ; DROP TABLE is rejected",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: "orders\"; DROP TABLE orders; --", action: Delete, byAge: true, bySubject: false}
			`),
			wantErr: true, want: []string{"spec.operations[0].collection", msgIdentifier}},
		{name: "PurgeJob/subjectsSecretRef into another namespace is rejected",
			manifest: purge(`
				subjectsSecretRef: {name: subjects, namespace: default}
				operations:
				- {collection: users, action: Delete, byAge: false, bySubject: true}
			`),
			wantErr: true, want: []string{"spec.subjectsSecretRef", msgSameNamespace}},
		{name: "PurgeJob/missing mode is rejected",
			manifest: obj("PurgeJob", "datasetRef: {name: shop}\ncutoff: \"2026-05-25T19:00:00Z\"\noperations: [{collection: browsing_logs, action: Delete, byAge: true, bySubject: false}]\n"),
			wantErr:  true, want: []string{"spec.mode", msgRequired}},
		{name: "PurgeJob/cutoff that is not a timestamp is rejected",
			manifest: purge(`
				cutoff: 180 days ago
				operations:
				- {collection: browsing_logs, action: Delete, byAge: true, bySubject: false}
			`),
			wantErr: true, want: []string{"spec.cutoff"}},
		{name: "PurgeJob/spec is immutable but for suspend, status is not",
			manifest: purge(`
				cutoff: "2026-05-25T19:00:00Z"
				operations:
				- {collection: browsing_logs, action: Delete, byAge: true, bySubject: false}
			`),
			updates: []update{
				{desc: "move the cutoff", mutate: setField("2026-11-21T19:00:00Z", "spec", "cutoff"),
					wantErr: true, want: []string{"spec is immutable but for suspend: a PurgeJob executes exactly what it was created with"}},
				{desc: "switch to DryRun", mutate: setField("DryRun", "spec", "mode"),
					wantErr: true, want: []string{"spec is immutable"}},
				{desc: "suspend", mutate: setField(true, "spec", "suspend")},
				{desc: "add safety limits while suspended", mutate: setField(map[string]interface{}{"maxRows": int64(5)}, "spec", "safety"),
					wantErr: true, want: []string{"spec is immutable but for suspend"}},
				{desc: "change the batch size while suspended", mutate: setField(int64(7), "spec", "batchSize"),
					wantErr: true, want: []string{"spec is immutable but for suspend"}},
				{desc: "resume", mutate: setField(false, "spec", "suspend")},
				{desc: "add an operation", mutate: setField([]interface{}{
					map[string]interface{}{"collection": "browsing_logs", "action": "Delete", "byAge": true},
					map[string]interface{}{"collection": "orders", "action": "Delete", "byAge": true},
				}, "spec", "operations"), wantErr: true, want: []string{"spec is immutable but for suspend"}},
				{desc: "checkpoint progress in status", status: true, mutate: func(u *unstructured.Unstructured) {
					setField("Running", "status", "phase")(u)
					setField(int64(1200), "status", "matched")(u)
					setField([]interface{}{map[string]interface{}{
						"collection": "browsing_logs", "phase": "Running", "matched": int64(1200),
						"deleted": int64(1000), "anonymized": int64(0), "batches": int64(1), "cursor": "opaque-cursor",
					}}, "status", "operations")(u)
				}},
			}},
	}...)
}

// boundaryCases: the largest values the bounds of issue 17 allow are
// accepted (test/hostile has the values just beyond them), so the bounds
// refuse nothing a real policy needs.
func boundaryCases() []admissionCase {
	policy := func(extra string) string {
		return obj("RetentionPolicy", "datasetRef: {name: shop}\nmode: DryRun\nschedule: \"0 3 * * *\"\n"+extra)
	}
	rule := func(olderThan string) string {
		return policy("rules: [{name: r, collections: [users], olderThan: " + olderThan + ", action: Delete}]\n")
	}
	var out []admissionCase
	for _, d := range []string{"100y", "1200mo", "5218w", "36525d", "99999h"} {
		out = append(out, admissionCase{name: "RetentionPolicy/olderThan " + d + " (the bound) is accepted", manifest: rule(d)})
	}
	for _, d := range []string{"1440m", "86400s", "9999999ms"} {
		out = append(out, admissionCase{name: "DataStore/probeInterval " + d + " (at most 24h) is accepted",
			manifest: obj("DataStore", dedent(validPostgres)+"probeInterval: "+d+"\n")})
	}
	for _, d := range []string{"10m", "0s", "0h", "1m", "60s", "604800s", "10080m", "168h"} {
		out = append(out, admissionCase{name: "RetentionPolicy/backlogInterval " + d + " is accepted", manifest: rule("30d") + "  backlogInterval: " + d + "\n"})
	}
	for _, d := range []string{"30s", "59s", "169h", "10081m", "1d", "10", "-1m", "010m"} {
		out = append(out, admissionCase{name: "RetentionPolicy/backlogInterval " + d + " is refused", manifest: rule("30d") + "  backlogInterval: \"" + d + "\"\n",
			wantErr: true, want: []string{"backlogInterval"}})
	}
	return append(out,
		admissionCase{name: "RetentionPolicy/startingDeadlineSeconds of one year is accepted",
			manifest: rule("30d") + "  startingDeadlineSeconds: 31536000\n  effectiveFrom: \"2200-12-31T23:59:59Z\"\n"},
		admissionCase{name: "LegalHold/expiresAt 1970-01-01 (an expired hold) is accepted",
			manifest: obj("LegalHold", "datasets: [shop]\nexpiresAt: \"1970-01-01T00:00:00Z\"\n")},
		admissionCase{name: "DeletionRequest/deadline 100y, ttl ten years and a Unicode identity are accepted",
			manifest: obj("DeletionRequest", "subject: {identities: [{type: name, value: \"Zoë 张伟 🙂\"}]}\nreason: Other\ndeadline: 100y\nreviewWindow: 1200mo\nttlSecondsAfterFinished: 315360000\nscope: {selector: {matchExpressions: [{key: app, operator: Exists}, {key: tier, operator: NotIn, values: [test]}]}}\n")},
		admissionCase{name: "Dataset/patterns and prefixes with a literal part anywhere are accepted",
			manifest: obj("Dataset", `
				dataStoreRef: {name: cache}
				collections:
				- {name: a, keyPattern: "{user_id}:session", identities: [{type: user_id}]}
				- {name: b, keyPattern: "u{user_id}", identities: [{type: user_id}]}
				- {name: c, prefix: "{user_id}/avatar.png", identities: [{type: user_id}]}
				- {name: d, prefix: "uploads/v1..v2/{user_id}/", identities: [{type: user_id}]}
				- {name: e, schema: pgcrypto_data, table: users, primaryKey: [tenant, id], identities: [{type: user_id, field: id}, {type: email, field: email}]}
			`)},
		admissionCase{name: "DataStore/MySQL database named like a system schema but not one is accepted",
			manifest: obj("DataStore", "type: MySQL\nhost: db\ndatabase: mysql_app\ncredentialsSecretRef: {name: db-credentials}\n")},
	)
}

// TestAdmission sends every case to the real apiserver.
func TestAdmission(t *testing.T) {
	t.Logf("kube-apiserver: %s", serverVersion)
	ns := newNamespace(t, "admission")
	all := cases()
	kinds := map[string]int{}
	names := map[string]bool{}
	for _, c := range all {
		if names[c.name] {
			t.Fatalf("duplicate case name %q", c.name)
		}
		names[c.name] = true
		kinds[strings.SplitN(c.name, "/", 2)[0]]++
	}
	t.Logf("%d cases: %v", len(all), kinds)
	for i, c := range all {
		t.Run(c.name, func(t *testing.T) {
			fail := t.Errorf
			if c.blocked != "" {
				fail = func(format string, args ...interface{}) {
					t.Errorf("BLOCKED on API fix reported to the lead (%s):\n"+format, append([]interface{}{c.blocked}, args...)...)
				}
			}
			ctx := context.Background()
			u := decode(t, c.manifest)
			u.SetNamespace(ns)
			u.SetName(fmt.Sprintf("case-%03d", i))
			err := k8s.Create(ctx, u, strict)
			if !checkResult(t, fail, "create", err, c.wantErr, c.want) || c.wantErr {
				return
			}
			for _, up := range c.updates {
				cur := &unstructured.Unstructured{}
				cur.SetGroupVersionKind(u.GroupVersionKind())
				if err := k8s.Get(ctx, client.ObjectKeyFromObject(u), cur); err != nil {
					t.Fatalf("get before %q: %v", up.desc, err)
				}
				up.mutate(cur)
				var err error
				if up.status {
					err = k8s.Status().Update(ctx, cur, strict)
				} else {
					err = k8s.Update(ctx, cur, strict)
				}
				what := "update (" + up.desc + ")"
				if up.status {
					what = "status update (" + up.desc + ")"
				}
				checkResult(t, fail, what, err, up.wantErr, up.want)
			}
		})
	}
}

// checkResult compares an apiserver answer with the expectation and reports
// it; it returns whether the answer was as expected.
func checkResult(t *testing.T, fail func(string, ...interface{}), what string, err error, wantErr bool, want []string) bool {
	t.Helper()
	switch {
	case wantErr && err == nil:
		fail("%s accepted, want rejection mentioning %q", what, want)
		return false
	case !wantErr && err != nil:
		fail("%s rejected, want accepted: %v", what, err)
		return false
	case err != nil:
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				fail("%s rejected as expected, but the message lacks %q:\n%v", what, w, err)
				return false
			}
		}
		t.Logf("%s rejected: %v", what, err)
	default:
		t.Logf("%s accepted", what)
	}
	return true
}
