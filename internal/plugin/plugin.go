// Package plugin is `kubectl lethe` (cmd/kubectl-lethe): what an admin
// needs beyond kubectl get to run Lethe. It reads and writes Lethe's objects
// only through the API server, as the user of the kubeconfig, and never
// sends an identity anywhere: `ledger lookup` digests it locally.
//
//	kubectl lethe status [-A]                 every Lethe object: running, held, stalled, overdue
//	kubectl lethe report [-A]                 per promise: rule, period, records past it, last run; per request: phase, deadline, receipt
//	kubectl lethe approve REQUEST...          approve DeletionRequests (annotation retention.lethe.dev/approved-by)
//	kubectl lethe release-run PURGEJOB        let a run stopped by its safety limit proceed
//	kubectl lethe run-now POLICY              start a RetentionPolicy run now
//	kubectl lethe suspend|resume POLICY       set spec.suspend of a RetentionPolicy
//	kubectl lethe receipt verify REQUEST      recompute a receipt's SHA-256, compare with status and the ledger
//	kubectl lethe ledger lookup TYPE < value  find the ledger line of an identity (value read from stdin)
package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/duration"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
)

// Streams are the command's input and outputs.
type Streams struct {
	In       io.Reader
	Out, Err io.Writer
}

// Options are the global flags and what they resolve to.
type Options struct {
	Kubeconfig    string
	Context       string
	Namespace     string
	AllNamespaces bool
	Output        string

	Streams
	// Now is the clock (tests fix it).
	Now func() time.Time

	client    client.Client
	namespace string // resolved: the flag, the context's, or "default"
}

// NewCommand returns the root command, kubectl-lethe.
func NewCommand(s Streams) *cobra.Command {
	o := &Options{Streams: s, Now: time.Now}
	root := &cobra.Command{
		Use:   "kubectl-lethe",
		Short: "Operate Lethe: status, reports, approvals, runs, receipts and the erasure ledger",
		Long: "kubectl lethe operates Lethe, the data-retention operator, through the API server as the user of your kubeconfig.\n" +
			"Identities given to `ledger lookup` are digested locally and never sent or printed.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if cmd.Name() == "help" || cmd.Name() == "completion" {
				return nil
			}
			switch o.Output {
			case "", "table", "wide", "json", "yaml":
			default:
				return fmt.Errorf("--output must be table, json or yaml, not %q", o.Output)
			}
			return o.connect()
		},
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.Err)
	f := root.PersistentFlags()
	f.StringVar(&o.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)")
	f.StringVar(&o.Context, "context", "", "the kubeconfig context to use")
	f.StringVarP(&o.Namespace, "namespace", "n", "", "the namespace (default: the context's)")
	f.StringVarP(&o.Output, "output", "o", "", "output format: table (default), json or yaml")
	root.AddCommand(
		o.statusCommand(), o.reportCommand(), o.approveCommand(), o.releaseRunCommand(), o.runNowCommand(),
		o.suspendCommand(true), o.suspendCommand(false), o.receiptCommand(), o.ledgerCommand(),
	)
	return root
}

// Main runs the command with os.Args and the process's streams, and
// returns the exit code.
func Main() int {
	cmd := NewCommand(Streams{In: os.Stdin, Out: os.Stdout, Err: os.Stderr})
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		return 1
	}
	return 0
}

func (o *Options) connect() error {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if o.Kubeconfig != "" {
		rules.ExplicitPath = o.Kubeconfig
	}
	overrides := &clientcmd.ConfigOverrides{CurrentContext: o.Context}
	if o.Namespace != "" {
		overrides.Context.Namespace = o.Namespace
	}
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := cc.ClientConfig()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	ns, _, err := cc.Namespace()
	if err != nil {
		return fmt.Errorf("kubeconfig: %w", err)
	}
	o.namespace = ns
	return o.setConfig(cfg)
}

func (o *Options) setConfig(cfg *rest.Config) error {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := retentionv1.AddToScheme(scheme); err != nil {
		return err
	}
	cfg = rest.CopyConfig(cfg)
	cfg.UserAgent = "kubectl-lethe"
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	o.client = c
	return nil
}

// listNamespace is the namespace to list in: "" (all) with -A.
func (o *Options) listNamespace() string {
	if o.AllNamespaces {
		return ""
	}
	return o.namespace
}

func (o *Options) ctx(cmd *cobra.Command) context.Context {
	if cmd.Context() != nil {
		return cmd.Context()
	}
	return context.Background()
}

// structured prints v as JSON or YAML when -o asks for it, and reports
// whether it did.
func (o *Options) structured(v any) (bool, error) {
	switch o.Output {
	case "json":
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return true, err
		}
		_, err = fmt.Fprintln(o.Out, string(b))
		return true, err
	case "yaml":
		b, err := yaml.Marshal(v)
		if err != nil {
			return true, err
		}
		_, err = o.Out.Write(b)
		return true, err
	}
	return false, nil
}

// table writes rows under a header, columns aligned as kubectl get does.
func table(out io.Writer, header []string, rows [][]string) error {
	w := tabwriter.NewWriter(out, 0, 8, 3, ' ', 0)
	fmt.Fprintln(w, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(w, strings.Join(r, "\t"))
	}
	return w.Flush()
}

// age renders a duration as kubectl get does (90s, 5m30s, 4h59m, 3d).
func age(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	return duration.HumanDuration(d)
}

// when renders an instant relative to now: "in 3h", "5m ago", "<none>".
func when(t *time.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "<none>"
	}
	if t.After(now) {
		return "in " + age(t.Sub(now))
	}
	return age(now.Sub(*t)) + " ago"
}
