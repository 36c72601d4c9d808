// Command demo is `make demo`: it starts a local control plane (kube-apiserver
// and etcd from bin/k8s), a throwaway PostgreSQL with a realistic shop
// database (and Redis, S3 and MariaDB stores) and the Lethe manager binary
// (built with go build, run as its own process), applies config/samples,
// runs the retention policy and the deletion requests, prints what Lethe did
// (every count read back from the database) and stops everything again.
//
//	go run ./hack/demo [-users 20000] [-keep] [-stores all] [-manager-log bin/demo/manager.log]
//
// Ctrl-C (or SIGTERM) stops everything and removes the temporary directories
// at any point; a second Ctrl-C exits at once (the next run cleans up what
// that leaves behind).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/lethe-dev/lethe/hack/demo/demo"
)

func main() {
	var o demo.Options
	flag.IntVar(&o.Users, "users", 20000, fmt.Sprintf("Number of sample users (at least %d); every table scales with it.", demo.MinUsers))
	flag.BoolVar(&o.Keep, "keep", false, "Leave everything running after the results, until Ctrl-C, for exploring with kubectl.")
	flag.StringVar(&o.ManagerLog, "manager-log", "", "Write the manager's log here (default: in the temporary run directory, removed at the end).")
	stores := flag.String("stores", "all", fmt.Sprintf("Datastores besides PostgreSQL: all, none or a comma-separated list of %s.", strings.Join(demo.StoreNames(), ", ")))
	flag.BoolVar(&o.RequireStores, "require-stores", false, "Fail instead of leaving out a datastore whose server software is not installed.")
	flag.Parse()
	switch *stores {
	case "all":
	case "none":
		o.Stores = []string{}
	default:
		o.Stores = strings.Split(*stores, ",")
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		// From now on a second signal ends the process at once.
		stop()
	}()

	rep, err := demo.Run(ctx, o)
	switch {
	case err == nil && rep.Stopped:
	case errors.Is(err, context.Canceled):
		os.Exit(130)
	case err != nil:
		fmt.Fprintf(os.Stderr, "\nmake demo failed: %v\n", err)
		os.Exit(1)
	default:
		fmt.Fprintln(os.Stderr, "\nmake demo: not everything stopped cleanly (see above)")
		os.Exit(1)
	}
}
