package v1alpha1

// Dataset reasons beyond the shared ones.
const (
	ReasonValidated          = "Validated"
	ReasonCollectionNotFound = "CollectionNotFound"
	ReasonFieldNotFound      = "FieldNotFound"
	// ReasonPrimaryKeyNotUnique: a declared primaryKey is not backed by a
	// primary key or unique NOT NULL, non-partial index of the live table.
	ReasonPrimaryKeyNotUnique = "PrimaryKeyNotUnique"
	// ReasonInvalidAnonymization: a field's strategy cannot apply (a key or
	// unique column, Null on NOT NULL, a type or length it cannot write) or
	// an Anonymize collection leaves an identity field as it is.
	ReasonInvalidAnonymization = "InvalidAnonymization"
)
