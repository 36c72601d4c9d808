// Package request plans and measures the erasure of one DeletionRequest's
// subject; the DeletionRequest controller gets the request, passes its
// gates, calls this package and writes status.
//
//   - Subject: the identities the request names inline and in its identity
//     Secret, checked (internal/identity), and the timeline its reason and
//     spec give (review window, deadline).
//   - Scope: the Datasets in scope, each validated against its store by the
//     Dataset controller before anything is planned (their foreign keys come
//     from that validation), and those that require approval.
//   - Plan: every collection that reaches the subject, through its own
//     identity fields or an owning path (internal/erasure), children first,
//     with the whenReferenced fallbacks an earlier preflight decided.
//   - Derivation: the subject's further identities (internal/derive), read
//     from the stores only when they can change the erasure, and kept in the
//     request's own Secret so verification, the receipt, the ledger and a
//     restarted manager see the same identities after the erasure deleted
//     the records they were read from.
//   - Holds: the active LegalHolds that name one of the subject's identities
//     (named or derived, the request's or the hold's) or keep a whole planned
//     collection.
//   - Measure: the preflight (internal/engine: no record outside the erasure
//     left referring to one it deletes), the counts before erasure that the
//     receipt reports, and verification after it.
package request

import (
	"errors"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/derive"
	"github.com/lethe-dev/lethe/internal/engine"
)

// Planner reads what planning a request needs from the cluster and the
// stores.
type Planner struct {
	// Client reads Datasets, DataStores, LegalHolds and RetentionPolicies
	// (cached) and creates the request's Secret of derived identities.
	Client client.Client
	// Reader reads Secrets (uncached).
	Reader client.Reader
	// Drivers opens the stores (connect.Pool).
	Drivers derive.Drivers
}

// InvalidOperation reports whether err says that an operation cannot run as
// specified (retrying cannot help).
func InvalidOperation(err error) bool {
	return err != nil && (errors.Is(err, datastore.ErrInvalid) || errors.Is(err, engine.ErrInvalid))
}

func (p *Planner) stores() derive.Stores { return derive.Stores{Client: p.Client, Drivers: p.Drivers} }
