package testharness

import (
	"regexp"
	"testing"
)

func TestUniqueNameIsValidForDatabasesAndBuckets(t *testing.T) {
	t.Run("Some Test/with spaces & UPPER-case_and_a_very_long_name_that_goes_on_and_on_and_on", func(t *testing.T) {
		db := uniqueName(t, "lethe", '_', 63)
		if !regexp.MustCompile(`^lethe_[0-9]+_[a-z0-9_]*[a-z0-9]$`).MatchString(db) || len(db) > 63 {
			t.Errorf("database name %q", db)
		}
		bucket := uniqueName(t, "lethe", '-', 63)
		if !regexp.MustCompile(`^lethe-[0-9]+-[a-z0-9-]*[a-z0-9]$`).MatchString(bucket) || len(bucket) > 63 {
			t.Errorf("bucket name %q", bucket)
		}
		if uniqueName(t, "lethe", '_', 63) == db {
			t.Errorf("two calls returned %q", db)
		}
	})
}
