package engine

import (
	"errors"
	"strings"
	"testing"
	"time"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

func strp(s string) *string { return &s }

// usersDataset declares note (Redact) and shipping (Fixed "redacted") with
// strategies, email only as an identity, and role not at all.
func usersDataset() *retentionv1.Dataset {
	ds := &retentionv1.Dataset{}
	ds.Name = "shop"
	ds.Spec.Collections = []retentionv1.Collection{{
		Name: "users", TimestampField: "created_at",
		Identities: []retentionv1.IdentityField{{Type: "email", Field: "email"}},
		Fields: []retentionv1.DataField{
			{Name: "note", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyRedact}},
			{Name: "shipping", Anonymize: &retentionv1.Anonymization{Strategy: retentionv1.StrategyFixed, Replacement: strp("redacted")}},
			{Name: "email"},
		},
	}}
	return ds
}

func field(name string, s retentionv1.Strategy, replacement *string) retentionv1.FieldAnonymization {
	return retentionv1.FieldAnonymization{Name: retentionv1.Identifier(name), Anonymization: retentionv1.Anonymization{Strategy: s, Replacement: replacement}}
}

// TestCheckFields: rules and PurgeJobs anonymize only the fields the
// Dataset declares with a strategy, and write no Fixed text of their own.
func TestCheckFields(t *testing.T) {
	c := &usersDataset().Spec.Collections[0]
	for _, tt := range []struct {
		name  string
		field retentionv1.FieldAnonymization
		want  string // "" when allowed
	}{
		{"declared field, its strategy", field("note", retentionv1.StrategyRedact, nil), ""},
		{"declared field, another strategy", field("note", retentionv1.StrategyNull, nil), ""},
		{"declared Fixed, same text", field("shipping", retentionv1.StrategyFixed, strp("redacted")), ""},
		{"declared Fixed, Null instead", field("shipping", retentionv1.StrategyNull, nil), ""},
		{"undeclared column", field("role", retentionv1.StrategyFixed, strp("admin")), "field users.role is not declared by the Dataset with an anonymize strategy"},
		{"identity field without strategy", field("email", retentionv1.StrategyNull, nil), "field users.email is not declared"},
		{"Fixed text into a Redact field", field("note", retentionv1.StrategyFixed, strp("admin")), "field users.note: strategy Fixed may only write the replacement the Dataset declares"},
		{"another Fixed text", field("shipping", retentionv1.StrategyFixed, strp("role=admin")), "field users.shipping: strategy Fixed may only write"},
	} {
		err := CheckFields(c, []retentionv1.FieldAnonymization{tt.field})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: error %v, want %q", tt.name, err, tt.want)
		}
	}
}

// TestPolicyOperationsRefuses: a rule naming an undeclared field, and a rule
// whose cutoff would leave the API's range of dates, are ErrInvalid.
func TestPolicyOperationsRefuses(t *testing.T) {
	ds := usersDataset()
	p := &retentionv1.RetentionPolicy{}
	p.Spec.Rules = []retentionv1.RetentionRule{{Name: "r", Collections: []retentionv1.Identifier{"users"}, OlderThan: "30d", Action: retentionv1.ActionAnonymize,
		Fields: []retentionv1.FieldAnonymization{field("role", retentionv1.StrategyFixed, strp("admin"))}}}
	if _, err := PolicyOperations(p, ds, time.Now()); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "users.role") {
		t.Errorf("undeclared field: %v", err)
	}
	p.Spec.Rules = []retentionv1.RetentionRule{{Name: "r", Collections: []retentionv1.Identifier{"users"}, OlderThan: "100y", Action: retentionv1.ActionDelete}}
	if _, err := PolicyOperations(p, ds, time.Date(50, 1, 1, 0, 0, 0, 0, time.UTC)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "out of the range") {
		t.Errorf("cutoff before year 1: %v", err)
	}
	p.Spec.Rules[0].OlderThan = "5000y" // refused at admission; never a silly cutoff here either
	if ops, err := PolicyOperations(p, ds, time.Now()); !errors.Is(err, ErrInvalid) {
		t.Errorf("5000y: planned %v, %v; want ErrInvalid", ops, err)
	}
}

func TestSystemSchema(t *testing.T) {
	for _, s := range []string{"pg_catalog", "PG_CATALOG", "pg_toast", "pg_temp_3", "pg_toast_temp_3", "information_schema", "INFORMATION_SCHEMA", "mysql", "sys", "performance_schema"} {
		if !SystemSchema(s) {
			t.Errorf("%s is not a system schema", s)
		}
	}
	for _, s := range []string{"public", "app", "pgcrypto_data", "mysql_app", "system", ""} {
		if SystemSchema(s) {
			t.Errorf("%s is a system schema", s)
		}
	}
	pg := retentionv1.DataStorePostgreSQL
	if _, err := ToDriver(pg, &retentionv1.Collection{Name: "roles", Schema: "pg_catalog", Table: "pg_authid"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("pg_catalog.pg_authid: %v", err)
	}
	if dc, err := ToDriver(pg, &retentionv1.Collection{Name: "roles", Table: "pg_authid"}); err != nil || dc.Schema != "public" {
		t.Errorf("pg_authid without schema: %+v %v, want public.pg_authid", dc, err)
	}
	if _, err := ToDriver(retentionv1.DataStoreMySQL, &retentionv1.Collection{Name: "u", Schema: "mysql", Table: "user"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("MySQL with a schema: %v", err)
	}
}
