// Package all opens the driver for a DataStore's type.
package all

import (
	"context"
	"fmt"

	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/datastore/mysql"
	"github.com/lethe-dev/lethe/internal/datastore/postgres"
	"github.com/lethe-dev/lethe/internal/datastore/redis"
	"github.com/lethe-dev/lethe/internal/datastore/s3"
)

// Open connects to the store described by cfg.
func Open(ctx context.Context, cfg datastore.Config) (datastore.Driver, error) {
	switch cfg.Type {
	case "PostgreSQL":
		return postgres.New(ctx, cfg)
	case "MySQL":
		return mysql.New(ctx, cfg)
	case "Redis":
		return redis.New(ctx, cfg)
	case "S3":
		return s3.New(ctx, cfg)
	default:
		return nil, fmt.Errorf("%w: unknown DataStore type %q", datastore.ErrInvalid, cfg.Type)
	}
}
