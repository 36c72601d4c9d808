// Command manager runs Lethe's controllers. It only wires things together:
// flags, scheme, controllers, health probes and the metrics endpoint.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"
	_ "time/tzdata" // every IANA zone works in a distroless image

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/controllers"
	"github.com/lethe-dev/lethe/internal/datastore"
	"github.com/lethe-dev/lethe/internal/metrics"
)

func main() {
	var (
		metricsAddr, probeAddr, namespaces string
		pprofAddr                          string
		digestKeyFile                      string
		allowedNetworks, deniedNetworks    string
		qps                                float64
		burst                              int
		leader                             leaderElection
		options                            controllers.Options
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "Address the Prometheus metrics endpoint binds to; 0 disables it.")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "Address the health and readiness probes bind to.")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "Address Go's pprof endpoints (/debug/pprof/) bind to, for profiling memory and CPU; 0 disables them. Bind it to 127.0.0.1 and reach it with kubectl port-forward.")
	leader.bindFlags(flag.CommandLine)
	flag.Float64Var(&qps, "kube-api-qps", 100, "Queries per second to the Kubernetes API (checkpoints and receipts are API writes).")
	flag.IntVar(&burst, "kube-api-burst", 200, "Burst of queries to the Kubernetes API.")
	flag.StringVar(&namespaces, "watch-namespaces", "", "Comma-separated namespaces to watch; empty watches all. With a list, the manager needs only namespaced Roles in those namespaces (config/rbac-namespaced).")
	flag.IntVar(&options.DataStoreConcurrency, "datastore-concurrency", 2, "Parallel DataStore reconciles.")
	flag.IntVar(&options.DatasetConcurrency, "dataset-concurrency", 2, "Parallel Dataset reconciles.")
	flag.IntVar(&options.LegalHoldConcurrency, "legalhold-concurrency", 2, "Parallel LegalHold reconciles.")
	flag.DurationVar(&options.LegalHoldRecheck, "legalhold-recheck", 5*time.Minute, "How often an active LegalHold re-reads its subjects Secret and derives its subjects' further identities from the stores again.")
	flag.IntVar(&options.PolicyConcurrency, "policy-concurrency", 2, "Parallel RetentionPolicy reconciles.")
	flag.IntVar(&options.RequestConcurrency, "deletionrequest-concurrency", 16, "Parallel DeletionRequest reconciles.")
	flag.StringVar(&digestKeyFile, "digest-key-file", "", "File holding the key of the HMAC digests that stand for data subjects in status, receipts and the erasure ledger (mount a Secret). Falls back to $LETHE_DIGEST_KEY.")
	flag.IntVar(&options.PurgeJobConcurrency, "purgejob-concurrency", 4, "Parallel PurgeJob reconciles (jobs executing at once).")
	flag.DurationVar(&options.PurgeJobSlice, "purgejob-slice", 10*time.Second, "How long one PurgeJob reconcile executes batches before checkpointing and yielding.")
	flag.IntVar(&options.PurgeJobBatchesPerSlice, "purgejob-batches-per-slice", 0, "Most batches one PurgeJob reconcile executes before checkpointing and yielding, besides --purgejob-slice; 0 sets no bound.")
	flag.DurationVar(&options.CoalesceWindow, "coalesce-window", 200*time.Millisecond, "How long DeletionRequests that are ready gather before one PurgeJob erases them together.")
	flag.IntVar(&options.CoalesceMaxSubjects, "coalesce-max-subjects", 500, "Most DeletionRequests one PurgeJob erases together; 1 gives every request a PurgeJob of its own.")
	flag.StringVar(&allowedNetworks, "datastore-allowed-networks", datastore.DefaultAllowedNetworks,
		"Comma-separated networks DataStores may connect to: CIDRs (10.0.0.0/8, fd00::/8) or addresses, each optionally with :port (10.0.0.0/8:5432). Every address a DataStore's host resolves to must be allowed and not denied.")
	flag.StringVar(&deniedNetworks, "datastore-denied-networks", datastore.DefaultDeniedNetworks,
		"Comma-separated networks DataStores may never connect to, in the same form; denied wins over allowed. The default denies link-local addresses and cloud metadata services; a value replaces the whole list.")
	opts := zap.Options{Development: false}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")
	policy, err := datastore.NewNetworkPolicy(allowedNetworks, deniedNetworks)
	if err != nil {
		log.Error(err, "invalid --datastore-allowed-networks or --datastore-denied-networks")
		os.Exit(1)
	}
	options.NetworkPolicy = policy
	log.Info("DataStores connect only where the network policy allows", "policy", policy.String())

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(retentionv1.AddToScheme(scheme))

	cacheOpts := controllers.CacheOptions(namespaces)
	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS, restConfig.Burst = float32(qps), burst
	mgrOpts := ctrl.Options{
		Scheme:                 scheme,
		Cache:                  cacheOpts,
		Metrics:                metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		PprofBindAddress:       pprofAddr,
		// Secrets are read one by one, uncached: no cluster-wide Secret watch.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	}
	leader.apply(&mgrOpts)
	mgr, err := ctrl.NewManager(restConfig, mgrOpts)
	if err != nil {
		log.Error(err, "unable to create manager")
		os.Exit(1)
	}
	key, err := digestKey(digestKeyFile)
	if err != nil {
		log.Error(err, "unable to read the digest key")
		os.Exit(1)
	}
	deps := controllers.NewDeps(mgr, key)
	metrics.RegisterState(mgr.GetCache(), mgr.Elected())
	defer deps.Pool.Close()
	if err := controllers.Setup(mgr, deps, options); err != nil {
		log.Error(err, "unable to set up controllers")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "unable to set up ready check")
		os.Exit(1)
	}
	log.Info("starting manager")
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}

// digestKey reads the subject-digest key. Without one, digests would not be
// comparable across restarts (and the erasure ledger would be useless), so
// Lethe refuses to start rather than invent a key.
func digestKey(file string) ([]byte, error) {
	var key []byte
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		key = []byte(strings.TrimSpace(string(b)))
	} else {
		key = []byte(os.Getenv("LETHE_DIGEST_KEY"))
	}
	if len(key) < 32 {
		return nil, fmt.Errorf("the digest key must be at least 32 bytes: set --digest-key-file (a mounted Secret) or LETHE_DIGEST_KEY")
	}
	return key, nil
}
