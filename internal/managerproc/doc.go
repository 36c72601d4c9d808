// Package managerproc runs the real manager binary (the module's main
// package, built once per process with `go build`) as a subprocess, the way
// a cluster runs it: flags, a kubeconfig, the digest key in
// LETHE_DIGEST_KEY, no leader election. Tests (through
// testharness.Manager) and `make demo` use it, so nothing outside
// controllers/ and main.go wires the controllers itself.
//
//	m, err := managerproc.Start(ctx, managerproc.Options{
//		Config:     managerConfig,              // e.g. testenv's Env.ManagerConfig()
//		Namespaces: []string{ns},               // --watch-namespaces
//		Args:       []string{"--purgejob-concurrency=4"},
//		Log:        &logs,                      // stdout and stderr, JSON lines
//	})
//	defer m.Stop()                              // SIGTERM, then wait
//
// The binary goes to bin/managerproc/manager of the repository; `go build`
// relinks it only when the code changed, and a file lock keeps test
// processes of several packages from building it at once. Start returns
// once the manager answers its readiness probe (on a free loopback port).
//
// The kubeconfig is written from a rest.Config, so the manager runs as the
// identity of that config (a client certificate, a token): give it the
// RBAC-bound user of the test, never the admin. A rest.Config that a
// kubeconfig cannot express (WrapTransport, Dial) is refused; to observe
// the manager's API calls, point Config at a proxy of your own.
package managerproc
