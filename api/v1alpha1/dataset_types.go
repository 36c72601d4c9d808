package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KeyPattern is a Redis key pattern with identity placeholders, such as
// session:{user_id}:* . Letters, digits and _ : . / - * { } only, with a
// literal part outside the placeholders (session:) that tells these keys
// from other data.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_:./*{}-]+$')",message="must contain only letters, digits and _ : . / - * { } (placeholders are written {identity_type})"
// +kubebuilder:validation:XValidation:rule="self.matches('[A-Za-z0-9]')",message="must contain a literal part or a {placeholder}: a pattern of only wildcards and separators selects every key of the database"
// +kubebuilder:validation:XValidation:rule="!self.matches('[A-Za-z0-9]') || self.matches('(^|[}])[^{]*[A-Za-z0-9]')",message="needs a literal part (a letter or digit outside the placeholders, such as session: in session:{user_id}:*) that separates these keys from other data: a pattern made of placeholders, wildcards and separators alone, such as {user_id} or {user_id}:*, matches unrelated keys"
type KeyPattern string

// ObjectPrefix is an S3 key prefix with identity placeholders, such as
// uploads/{user_id}/ . Letters, digits and _ . / - = { } only, with a
// literal part outside the placeholders (uploads/) that tells these objects
// from other data, and no . or .. path segments.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=512
// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z0-9_./={}-]+$')",message="must contain only letters, digits and _ . / - = { } (placeholders are written {identity_type})"
// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="must not start with /"
// +kubebuilder:validation:XValidation:rule="self.matches('(^|[}])[^{]*[A-Za-z0-9]')",message="needs a literal part (a letter or digit outside the placeholders, such as uploads/ in uploads/{user_id}/) that separates these objects from other data: a prefix made of placeholders and separators alone, such as {user_id}/, matches unrelated objects"
// +kubebuilder:validation:XValidation:rule="!self.matches('(^|/)[.][.]?(/|$)')",message="must not contain . or .. path segments"
type ObjectPrefix string

// TimestampSource says where a record's age comes from.
// +kubebuilder:validation:Enum=Column;HashField;SortedSetScore;StreamID;IdleTime;LastModified
type TimestampSource string

const (
	// TimestampColumn is a SQL column (timestamptz, timestamp, datetime or date).
	TimestampColumn TimestampSource = "Column"
	// TimestampHashField is a Redis hash field holding Unix seconds or RFC 3339.
	TimestampHashField TimestampSource = "HashField"
	// TimestampSortedSetScore trims sorted-set members whose score (Unix
	// seconds) is older than the cutoff.
	TimestampSortedSetScore TimestampSource = "SortedSetScore"
	// TimestampStreamID trims stream entries whose ID time is older than the cutoff.
	TimestampStreamID TimestampSource = "StreamID"
	// TimestampIdleTime uses the Redis key's idle time (OBJECT IDLETIME).
	TimestampIdleTime TimestampSource = "IdleTime"
	// TimestampLastModified uses the S3 object's LastModified.
	TimestampLastModified TimestampSource = "LastModified"
)

// IdentityField says which field of a collection holds which kind of subject
// identifier.
type IdentityField struct {
	// Type of identifier held, for example user_id, email or phone.
	// +required
	Type IdentityType `json:"type"`

	// Field is the column (or hash field) holding it. For key patterns and
	// prefixes, the identity appears as a {type} placeholder instead and field
	// may be omitted.
	// +optional
	Field Identifier `json:"field,omitempty"`
}

// DataField describes one field that holds personal data.
type DataField struct {
	// Name of the column or hash field.
	// +required
	Name Identifier `json:"name"`

	// Categories of personal data the field holds (contact, device, location…).
	// Retention rules can select by category.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	Categories []Category `json:"categories,omitempty"`

	// Anonymize says how the field is anonymized when its record is
	// anonymized. Fields without it are left as they are.
	// +optional
	Anonymize *Anonymization `json:"anonymize,omitempty"`
}

// Ownership says what a reference means for erasure.
// +kubebuilder:validation:Enum=Owned;PointsTo
type Ownership string

const (
	// OwnershipOwned: the referencing records belong to the referenced
	// record's subject (an order's items, a user's addresses). Erasing the
	// subject erases them too, along every owning path.
	OwnershipOwned Ownership = "Owned"
	// OwnershipPointsTo: the referencing records only point at the referenced
	// record (an order pointing at a product, a buyer's order pointing at a
	// supplier's quote). They are never erased for the referenced record's
	// subject; if they would be left pointing at a record the erasure deletes,
	// planning stops before any change (see Collection.whenReferenced).
	OwnershipPointsTo Ownership = "PointsTo"
)

// WhenReferenced says what an erasure does with a subject's records that
// records outside the erasure still refer to.
// +kubebuilder:validation:Enum=Stop;Anonymize
type WhenReferenced string

const (
	// WhenReferencedStop stops the erasure before any change, naming the
	// constraint and how many records refer (the default).
	WhenReferencedStop WhenReferenced = "Stop"
	// WhenReferencedAnonymize anonymizes the collection's records (with its
	// fields' strategies) instead of deleting them, so the records that refer
	// to them stay valid.
	WhenReferencedAnonymize WhenReferenced = "Anonymize"
)

// Reference says that a field of this collection refers to a field of another
// collection of the same Dataset (child → parent), as a foreign key would.
// Lethe erases children before parents and, along owning references, erases
// the children of a subject's records with them. Foreign keys are discovered
// from the live schema and read as PointsTo unless a reference on the same
// field declares otherwise.
type Reference struct {
	// Field of this collection holding the reference.
	// +required
	Field Identifier `json:"field"`

	// Collection referred to, by its name in this Dataset.
	// +required
	Collection Identifier `json:"collection"`

	// TargetField is the referred-to field (default: that collection's
	// primary key).
	// +optional
	TargetField Identifier `json:"targetField,omitempty"`

	// Ownership says whether this collection's records belong to the subject
	// of the record they refer to (Owned, the default for a declared
	// reference: they are erased with it) or only point at it (PointsTo:
	// never erased for that subject). Erasure follows every Owned path.
	// +optional
	// +kubebuilder:default=Owned
	Ownership Ownership `json:"ownership,omitempty"`
}

// Collection is one place personal data lives: a table (SQL), a key pattern
// (Redis) or an object prefix (S3).
// +kubebuilder:validation:XValidation:rule="!(has(self.keyPattern) && has(self.prefix))",message="a collection is a table, a keyPattern or a prefix, not several"
// +kubebuilder:validation:XValidation:rule="!((has(self.keyPattern) || has(self.prefix)) && (has(self.table) || has(self.schema)))",message="table and schema are only for SQL collections"
// +kubebuilder:validation:XValidation:rule="self.action != 'Anonymize' || (has(self.fields) && self.fields.exists(f, has(f.anonymize)))",message="action Anonymize needs at least one field with an anonymize strategy"
// +kubebuilder:validation:XValidation:rule="!has(self.timestampSource) || has(self.timestampField) || self.timestampSource in ['IdleTime', 'LastModified', 'StreamID', 'SortedSetScore']",message="timestampSource Column and HashField need timestampField"
// +kubebuilder:validation:XValidation:rule="!has(self.identities) || self.identities.all(i, self.identities.exists_one(j, j.type == i.type))",message="each identity type may be declared once per collection: a second field of the same type would be ignored and its records never erased; declare the other field as a separate identity type or collection"
// +kubebuilder:validation:XValidation:rule="!has(self.primaryKey) || self.primaryKey.all(k, self.primaryKey.exists_one(j, j == k))",message="primaryKey lists a column twice"
// +kubebuilder:validation:XValidation:rule="!has(self.whenReferenced) || self.whenReferenced != 'Anonymize' || (has(self.fields) && self.fields.exists(f, has(f.anonymize)))",message="whenReferenced Anonymize needs at least one field with an anonymize strategy"
// +kubebuilder:validation:XValidation:rule="!has(self.traverseOnly) || !self.traverseOnly || !has(self.whenReferenced)",message="a traverseOnly collection is never erased, so whenReferenced does not apply"
type Collection struct {
	// Name of the collection, unique in the Dataset. For SQL it is also the
	// table name unless table is set.
	// +required
	Name Identifier `json:"name"`

	// Schema of the table (PostgreSQL; default public). For MySQL the
	// DataStore's database is used and schema must be unset. System schemas
	// (pg_catalog, pg_toast, any other pg_ name, information_schema, mysql,
	// sys, performance_schema) are refused: Lethe never works on catalogs.
	// +optional
	// +kubebuilder:validation:XValidation:rule="!self.lowerAscii().startsWith('pg_') && !(self.lowerAscii() in ['information_schema', 'mysql', 'sys', 'performance_schema'])",message="must not be a system schema (pg_catalog, pg_toast, pg_temp…, information_schema, mysql, sys, performance_schema): Lethe never works on system catalogs"
	Schema Identifier `json:"schema,omitempty"`

	// Table name, when it differs from name.
	// +optional
	Table Identifier `json:"table,omitempty"`

	// KeyPattern makes this a Redis collection: the keys matching the pattern,
	// with identity placeholders such as session:{user_id}:* .
	// +optional
	KeyPattern KeyPattern `json:"keyPattern,omitempty"`

	// Prefix makes this an S3 collection: the objects under the prefix, with
	// identity placeholders such as uploads/{user_id}/ .
	// +optional
	Prefix ObjectPrefix `json:"prefix,omitempty"`

	// TimestampField is the column or hash field that dates a record, used by
	// age-based retention. A collection without it can only be erased per
	// subject.
	// +optional
	TimestampField Identifier `json:"timestampField,omitempty"`

	// TimestampSource says where a record's age comes from (default Column for
	// SQL, HashField for Redis, LastModified for S3).
	// +optional
	TimestampSource TimestampSource `json:"timestampSource,omitempty"`

	// TimestampTimeZone is how a timestamp column without a time zone
	// (PostgreSQL timestamp, MySQL datetime) is read: the wall-clock time in
	// this IANA zone. Default UTC. timestamptz columns are absolute and ignore it.
	// +optional
	TimestampTimeZone TimeZone `json:"timestampTimeZone,omitempty"`

	// PrimaryKey columns, used for keyset batching. Discovered from the schema
	// when omitted. When declared, a primary key or unique index of the live
	// table (not partial, every column NOT NULL) must be made of these
	// columns (or some of them); otherwise the Dataset is not Ready
	// (PrimaryKeyNotUnique), since batching by a non-unique key skips or
	// repeats records.
	// +optional
	// +kubebuilder:validation:MaxItems=8
	// +listType=atomic
	PrimaryKey []Identifier `json:"primaryKey,omitempty"`

	// Identities are the fields that identify a data subject directly, at
	// most one field per identity type.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	Identities []IdentityField `json:"identities,omitempty"`

	// Fields that hold personal data, their categories and anonymization.
	// +optional
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Fields []DataField `json:"fields,omitempty"`

	// Categories of personal data held by the collection as a whole.
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	Categories []Category `json:"categories,omitempty"`

	// Action taken on a subject's records when the subject is erased: Delete
	// (default) or Anonymize (the fields with anonymize strategies are
	// rewritten and the record kept, for example orders kept for tax law).
	// +optional
	// +kubebuilder:default=Delete
	Action Action `json:"action,omitempty"`

	// References to other collections of this Dataset (child → parent).
	// +optional
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	References []Reference `json:"references,omitempty"`

	// TraverseOnly makes the collection a link only: erasure follows its
	// identities and references to reach other collections, but never deletes
	// or anonymizes its records, and retention rules cannot select it (a
	// shared lookup table, a catalogue, a table another team owns).
	// +optional
	TraverseOnly bool `json:"traverseOnly,omitempty"`

	// WhenReferenced says what an erasure does when records outside it (in
	// any table of the store, declared or not) still refer, by a foreign key,
	// to records of this collection it would delete: Stop (default: the
	// request stops before any change and names the constraint) or Anonymize
	// (those records are anonymized with the fields' strategies instead).
	// +optional
	WhenReferenced WhenReferenced `json:"whenReferenced,omitempty"`
}

// DatasetSpec is the personal-data map of one DataStore.
// +kubebuilder:validation:XValidation:rule="has(self.hmacKeySecretRef) || !self.collections.exists(c, has(c.fields) && c.fields.exists(f, has(f.anonymize) && f.anonymize.strategy == 'HMAC'))",message="strategy HMAC needs hmacKeySecretRef (the Secret key holding the HMAC key)"
type DatasetSpec struct {
	// DataStoreRef names the DataStore, in the same namespace, holding the data.
	// +required
	DataStoreRef LocalObjectReference `json:"dataStoreRef"`

	// HMACKeySecretRef names the Secret key used by the HMAC anonymization
	// strategy. Required when any field uses HMAC. The Secret must carry the
	// label retention.lethe.dev/secret: "true".
	// +optional
	HMACKeySecretRef *SecretKeySelector `json:"hmacKeySecretRef,omitempty"`

	// RequireApproval makes every DeletionRequest whose plan touches this
	// Dataset wait for an approval (annotation retention.lethe.dev/approved-by,
	// by someone other than the creator who holds the RBAC verb approve on
	// deletionrequests), whatever the request's own requireApproval says.
	// Such requests must carry retention.lethe.dev/requested-by. To make
	// approval required for a whole namespace instead, where users cannot
	// change it, label the namespace retention.lethe.dev/require-approval:
	// "true" (enforced by the admission policy of config/admission).
	// +optional
	RequireApproval bool `json:"requireApproval,omitempty"`

	// Collections of personal data in the store.
	// +required
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +listType=map
	// +listMapKey=name
	Collections []Collection `json:"collections"`
}

// CollectionStatus is what Lethe found of one collection in the live store.
type CollectionStatus struct {
	// Name of the collection.
	Name string `json:"name"`

	// Found says whether the table, key pattern or prefix was validated
	// against the store.
	Found bool `json:"found"`

	// EstimatedRows is the store's estimate of the record count.
	// +optional
	EstimatedRows *int64 `json:"estimatedRows,omitempty"`

	// Partitioned says whether the table is range-partitioned.
	// +optional
	Partitioned bool `json:"partitioned,omitempty"`

	// Message explains a problem with this collection.
	// +optional
	Message string `json:"message,omitempty"`
}

// IdentityPath says through which references a collection is reached from an
// identity type.
type IdentityPath struct {
	// Identity type, for example user_id.
	Identity string `json:"identity"`

	// Collection reached.
	Collection string `json:"collection"`

	// Via lists the hops from a collection that holds the identity directly,
	// as collection.field → collection.field; empty when the collection holds
	// the identity itself.
	// +optional
	Via []string `json:"via,omitempty"`
}

// DiscoveredReference is a single-column foreign key found in the live
// schema from one collection of the Dataset to another. Erasure follows it
// like a declared reference; a declared reference on the same field wins.
type DiscoveredReference struct {
	// Collection holding the foreign key (the child).
	Collection string `json:"collection"`

	// Field of the child holding the foreign key.
	Field string `json:"field"`

	// TargetCollection is the collection referred to (the parent).
	TargetCollection string `json:"targetCollection"`

	// TargetField is the referred-to field of the parent.
	TargetField string `json:"targetField"`

	// Constraint is the foreign key's name in the store.
	// +optional
	Constraint string `json:"constraint,omitempty"`

	// Ownership is how erasure reads the foreign key: PointsTo (the safe
	// reading: the child is not erased with the parent's subject) unless a
	// declared reference on the same field says Owned.
	// +optional
	Ownership Ownership `json:"ownership,omitempty"`
}

// DatasetStatus is the observed state of a Dataset.
type DatasetStatus struct {
	// ObservedGeneration is the generation the status was computed for.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (reasons Validated, DataStoreNotReady,
	// CollectionNotFound, FieldNotFound…), Reconciling, Stalled.
	// +optional
	// +listType=atomic
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Collections as found in the live store.
	// +optional
	Collections []CollectionStatus `json:"collections,omitempty"`

	// IdentityGraph lists which collection is reached from which identity.
	// +optional
	IdentityGraph []IdentityPath `json:"identityGraph,omitempty"`

	// ForeignKeys are the single-column foreign keys between collections of
	// this Dataset found in the live schema at the last validation. Erasure
	// planning and PurgeJobs follow them (children first) where no declared
	// reference covers the same field.
	// +optional
	// +listType=atomic
	ForeignKeys []DiscoveredReference `json:"foreignKeys,omitempty"`
}

// Dataset is the personal-data map of one DataStore: its collections, the
// fields that identify a subject, the timestamp that dates a record, data
// categories, erasure actions and references between collections. Owned by
// the application team.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=lset,categories=lethe
// +kubebuilder:printcolumn:name="DataStore",type=string,JSONPath=`.spec.dataStoreRef.name`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Dataset struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the declared data map.
	// +required
	Spec DatasetSpec `json:"spec"`

	// Status is what was found in the live store.
	// +optional
	Status DatasetStatus `json:"status,omitempty"`
}

// DatasetList is a list of Datasets.
// +kubebuilder:object:root=true
type DatasetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Dataset `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Dataset{}, &DatasetList{})
}
