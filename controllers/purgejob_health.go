package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/connect"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/executor"
	"github.com/lethe-dev/lethe/internal/health"
)

// healthReadTimeout bounds one reading of a store's health.
const healthReadTimeout = 10 * time.Second

// healthGate is the executor gate of the store's health (limits.health):
// asked before every batch, it lets the batch run while the store's last
// reading (internal/health.Tracker: at most one per check interval, shared
// by every job on the store) is within every limit, and pauses the job at
// this batch boundary otherwise, with the measured value and the limit. A
// store whose health cannot be read pauses the job (HealthUnknown), unless
// the store itself cannot be reached: that is returned as the error it is,
// so the job shows the outage (DataStoreAvailable False) and retries.
func (j *jobRun) healthGate(ctx context.Context) (*executor.Pause, error) {
	store := j.store
	limits, err := health.LimitsFor(&store.Spec)
	if err != nil {
		return &executor.Pause{Reason: retentionv1.ReasonHealthUnknown, Message: "Invalid health limits: " + err.Error()}, nil
	}
	if limits.None() || j.r.Health == nil {
		return nil, nil
	}
	reader, ok := j.driver.(datastore.HealthReader)
	if !ok {
		return nil, nil
	}
	key := types.NamespacedName{Namespace: store.Namespace, Name: store.Name}
	v := j.r.Health.Check(ctx, key, limits.CheckInterval, func(ctx context.Context) health.Verdict {
		ctx, cancel := context.WithTimeout(ctx, healthReadTimeout)
		defer cancel()
		replicas, err := j.replicaConfigs(ctx, limits)
		if err != nil {
			return health.Verdict{Reason: retentionv1.ReasonHealthUnknown, Message: "The store's health could not be read: " + err.Error()}
		}
		h, err := reader.Health(ctx, limits.DriverQuery(replicas))
		return health.Judge(limits, h, err)
	})
	if v.Healthy {
		return nil, nil
	}
	if v.Err != nil {
		// The store itself is down: an outage (DataStoreAvailable False,
		// retried with backoff), not throttling.
		return nil, v.Err
	}
	// Ask again after a check interval (at least a second: each pause is a
	// status write when its message changed).
	return &executor.Pause{Reason: v.Reason, Message: v.Message, Retry: max(limits.CheckInterval, time.Second)}, nil
}

// replicaConfigs resolves the connections of a MySQL store's replicas:
// host, port and the credentials of each one's Secret (the DataStore's by
// default), read under the rules of every Secret Lethe uses
// (connect.GetSecret: same namespace, label retention.lethe.dev/secret).
func (j *jobRun) replicaConfigs(ctx context.Context, limits health.Limits) ([]datastore.Config, error) {
	if !limits.Query().Replicas {
		return nil, nil
	}
	var out []datastore.Config
	for _, r := range limits.Replicas {
		ref := r.CredentialsSecretRef
		if ref == nil {
			ref = j.store.Spec.CredentialsSecretRef
		}
		if ref == nil {
			return nil, fmt.Errorf("replica %s has no credentialsSecretRef", r.Host)
		}
		user, password, err := replicaSecrets.get(ctx, j.r.APIReader, j.store.Namespace, ref.Name)
		if err != nil {
			return nil, fmt.Errorf("replica %s: %w", r.Host, err)
		}
		c := datastore.Config{Host: r.Host, Port: 3306, Username: user, Password: password}
		if r.Port != nil {
			c.Port = int(*r.Port)
		}
		out = append(out, c)
	}
	return out, nil
}

// replicaSecrets keeps the credentials of replicas' Secrets for
// secretRevalidate, so that a reading per check interval does not cost an
// API read per replica (rotated credentials are picked up within that time,
// as connect.Pool does for DataStores).
var replicaSecrets = &secretCache{}

const secretRevalidate = 30 * time.Second

type secretCache struct {
	mu      sync.Mutex
	entries map[types.NamespacedName]cachedCredentials
}

type cachedCredentials struct {
	user, password string
	at             time.Time
}

func (c *secretCache) get(ctx context.Context, reader client.Reader, namespace, name string) (string, string, error) {
	key := types.NamespacedName{Namespace: namespace, Name: name}
	c.mu.Lock()
	if e, ok := c.entries[key]; ok && time.Since(e.at) < secretRevalidate {
		c.mu.Unlock()
		return e.user, e.password, nil
	}
	c.mu.Unlock()
	secret, err := connect.GetSecret(ctx, reader, namespace, name)
	if err != nil {
		return "", "", err
	}
	user, password := string(secret.Data["username"]), string(secret.Data["password"])
	if user == "" || password == "" {
		return "", "", fmt.Errorf("%w: Secret %q needs both keys username and password", connect.ErrInvalidSecret, name)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[types.NamespacedName]cachedCredentials{}
	}
	c.entries[key] = cachedCredentials{user: user, password: password, at: time.Now()}
	return user, password, nil
}
