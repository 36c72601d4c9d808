// Package unittest holds table-driven tests of the reconcilers' gates and
// failure paths that run in seconds without a control plane or a datastore:
// controller-runtime's fake client stands in for the API server and
// internal/datastore/fake, opened through a connect.Pool, for the store.
// The tests beside the reconcilers in controllers/ run them against a real
// kube-apiserver and real datastores (make test); these run with make
// test-unit too.
package unittest
