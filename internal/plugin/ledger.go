package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/digest"
	"github.com/lethe-dev/lethe/internal/identity"
	"github.com/lethe-dev/lethe/internal/ledger"
	"github.com/lethe-dev/lethe/internal/receipt"
)

// Verification is what `receipt verify` found.
type Verification struct {
	Namespace string `json:"namespace"`
	Request   string `json:"request"`
	// Recomputed is the SHA-256 of the receipt as it is in status now.
	Recomputed string `json:"recomputedSHA256"`
	// Recorded is the receipt's own sha256 field.
	Recorded string `json:"recordedSHA256"`
	// Ledger is the receiptSHA256 of the request's ledger line ("" when
	// there is none).
	Ledger string `json:"ledgerSHA256,omitempty"`
	// Valid: the three agree.
	Valid bool `json:"valid"`
	// Reasons say what does not agree.
	Reasons []string `json:"problems,omitempty"`
}

// VerifyReceipt recomputes the receipt's SHA-256 from the DeletionRequest's
// status (internal/receipt) and compares it with the receipt's sha256 and
// with the request's line in the erasure ledger, which outlives the
// request.
func VerifyReceipt(ctx context.Context, c client.Reader, ns, name string) (*Verification, error) {
	var dr retentionv1.DeletionRequest
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &dr); err != nil {
		return nil, err
	}
	if dr.Status.Receipt == nil {
		return nil, fmt.Errorf("deletionrequest/%s has no receipt (phase %s)", name, orNone(string(dr.Status.Phase)))
	}
	sum, err := receipt.SHA256(dr.Status.Receipt)
	if err != nil {
		return nil, err
	}
	v := &Verification{Namespace: ns, Request: name, Recomputed: sum, Recorded: dr.Status.Receipt.SHA256}
	if sum != v.Recorded {
		v.Reasons = append(v.Reasons, "the receipt's content does not match its sha256: it was changed after it was sealed")
	}
	line, err := ledger.Line(ctx, c, ns, name)
	if err != nil {
		return nil, fmt.Errorf("reading the erasure ledger: %w", err)
	}
	if line == "" {
		v.Reasons = append(v.Reasons, "no line for this request in the erasure ledger (ConfigMaps labelled "+retentionv1.LabelLedger+")")
	} else {
		e, err := ledger.ParseLine(line)
		if err != nil {
			return nil, fmt.Errorf("the ledger line of %s does not parse: %w", name, err)
		}
		v.Ledger = e.Receipt
		if e.Receipt != sum {
			v.Reasons = append(v.Reasons, "the erasure ledger records another receipt SHA-256 for this request")
		}
		if e.Subject != dr.Status.Receipt.SubjectDigest {
			v.Reasons = append(v.Reasons, "the erasure ledger records another subject digest for this request")
		}
	}
	v.Valid = len(v.Reasons) == 0
	return v, nil
}

func (o *Options) receiptCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "receipt", Short: "Work with the receipts of completed DeletionRequests"}
	cmd.AddCommand(&cobra.Command{
		Use:   "verify DELETIONREQUEST...",
		Short: "Recompute a receipt's SHA-256 from the DeletionRequest and compare it with the receipt and the erasure ledger",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var vs []*Verification
			bad := 0
			for _, n := range args {
				v, err := VerifyReceipt(o.ctx(cmd), o.client, o.namespace, n)
				if err != nil {
					return err
				}
				if !v.Valid {
					bad++
				}
				vs = append(vs, v)
			}
			if ok, err := o.structured(vs); ok {
				if err != nil {
					return err
				}
			} else {
				var rows [][]string
				for _, v := range vs {
					status := "VALID"
					if !v.Valid {
						status = "INVALID: " + strings.Join(v.Reasons, "; ")
					}
					rows = append(rows, []string{v.Request, v.Recomputed, orNone(v.Ledger), status})
				}
				if err := table(o.Out, []string{"REQUEST", "SHA256", "LEDGER", "RESULT"}, rows); err != nil {
					return err
				}
			}
			if bad > 0 {
				return fmt.Errorf("%d of %d receipts did not verify", bad, len(vs))
			}
			return nil
		},
	})
	return cmd
}

// Match is a ledger line holding an identity's digest.
type Match struct {
	Namespace     string `json:"namespace"`
	ConfigMap     string `json:"configMap"`
	Request       string `json:"request"`
	Subject       string `json:"subjectDigest"`
	Completed     string `json:"completed"`
	ReceiptSHA256 string `json:"receiptSHA256"`
}

// LookupIdentity finds the ledger lines that list the keyed digest of the
// identity typ:value in ns ("" for every namespace). The value is digested
// here with key and goes nowhere else; errors never contain it.
func LookupIdentity(ctx context.Context, c client.Reader, ns string, key []byte, typ, value string) (string, []Match, error) {
	d := digest.Identity(key, typ, value)
	var list corev1.ConfigMapList
	if err := c.List(ctx, &list, client.InNamespace(ns), client.MatchingLabels{retentionv1.LabelLedger: "true"}); err != nil {
		return d, nil, err
	}
	var out []Match
	for _, cm := range list.Items {
		for req, line := range cm.Data {
			e, err := ledger.ParseLine(line)
			if err != nil {
				continue // not a ledger line: someone edited the ConfigMap
			}
			if e.HasIdentity(typ, d) {
				out = append(out, Match{Namespace: cm.Namespace, ConfigMap: cm.Name, Request: req, Subject: e.Subject, Completed: e.Completed, ReceiptSHA256: e.Receipt})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Completed < out[j].Completed })
	return d, out, nil
}

// DigestKeyOptions say where the digest key is read from.
type DigestKeyOptions struct {
	File      string // a file holding the key (as the manager's --digest-key-file)
	Secret    string // namespace/name of the Secret the manager mounts
	SecretKey string
}

// DigestKey reads the manager's digest key: from File, else from the
// Secret (the reader needs get on it), trimmed as the manager trims it.
func DigestKey(ctx context.Context, c client.Reader, o DigestKeyOptions) ([]byte, error) {
	var raw []byte
	if o.File != "" {
		b, err := os.ReadFile(o.File)
		if err != nil {
			return nil, err
		}
		raw = b
	} else {
		ns, name, ok := strings.Cut(o.Secret, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("--digest-key-secret must be namespace/name, not %q", o.Secret)
		}
		var s corev1.Secret
		if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			return nil, fmt.Errorf("reading the digest key from Secret %s (the one the manager mounts; or pass --digest-key-file): %w", o.Secret, err)
		}
		b, ok := s.Data[o.SecretKey]
		if !ok {
			return nil, fmt.Errorf("the Secret %s has no key %q", o.Secret, o.SecretKey)
		}
		raw = b
	}
	key := []byte(strings.TrimSpace(string(raw)))
	if len(key) < 32 {
		return nil, errors.New("the digest key is shorter than 32 bytes: not the manager's key")
	}
	return key, nil
}

// readIdentityValue reads one line from r: the value, never an argument
// (it would stay in shell history and the process list).
func readIdentityValue(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", errors.New("reading the identity value from standard input failed")
	}
	v := strings.TrimRight(line, "\r\n")
	if v == "" {
		return "", errors.New("no identity value on standard input (pipe it in, or type it and press Enter)")
	}
	return v, nil
}

func (o *Options) ledgerCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "ledger", Short: "Search the erasure ledger"}
	var ko DigestKeyOptions
	lookup := &cobra.Command{
		Use:   "lookup IDENTITY-TYPE",
		Short: "Find the ledger line of an identity: the value is read from standard input, digested locally with the manager's key and never sent or printed",
		Example: "  printf '%s\\n' \"$EMAIL\" | kubectl lethe ledger lookup email -n shop\n" +
			"  kubectl lethe ledger lookup user_id -A --digest-key-file key.txt   # then type the value",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			typ := args[0]
			if !identity.IsType(typ) {
				return fmt.Errorf("%q is not an identity type (lowercase letters, digits and underscores)", typ)
			}
			ctx := o.ctx(cmd)
			key, err := DigestKey(ctx, o.client, ko)
			if err != nil {
				return err
			}
			value, err := readIdentityValue(o.In)
			if err != nil {
				return err
			}
			if err := identity.Check(typ, value); err != nil {
				return err // never contains the value
			}
			d, matches, err := LookupIdentity(ctx, o.client, o.listNamespace(), key, typ, value)
			if err != nil {
				return fmt.Errorf("listing the ledger ConfigMaps: %w", err)
			}
			if ok, err := o.structured(map[string]any{"identityDigest": d, "type": typ, "lines": orEmpty(matches)}); ok {
				if err != nil {
					return err
				}
			} else if len(matches) > 0 {
				fmt.Fprintf(o.Out, "identity %s digest %s\n", typ, d)
				var rows [][]string
				for _, m := range matches {
					rows = append(rows, []string{m.Namespace, m.Request, m.Completed, short(m.ReceiptSHA256), m.ConfigMap})
				}
				if err := table(o.Out, []string{"NAMESPACE", "REQUEST", "COMPLETED", "RECEIPT", "CONFIGMAP"}, rows); err != nil {
					return err
				}
			}
			if len(matches) == 0 {
				return fmt.Errorf("no erasure ledger line in %s lists this %s (digest %s)", o.where(), typ, d)
			}
			return nil
		},
	}
	lookup.Flags().StringVar(&ko.File, "digest-key-file", "", "a file holding the manager's digest key (instead of reading its Secret)")
	lookup.Flags().StringVar(&ko.Secret, "digest-key-secret", "lethe-system/lethe-digest-key", "namespace/name of the Secret holding the manager's digest key (with Helm: <release namespace>/<release>-digest-key, or digestKey.existingSecret)")
	lookup.Flags().StringVar(&ko.SecretKey, "digest-key-secret-key", "key", "the key of that Secret")
	lookup.Flags().BoolVarP(&o.AllNamespaces, "all-namespaces", "A", false, "search the ledgers of every namespace")
	cmd.AddCommand(lookup)
	return cmd
}

func orEmpty(m []Match) []Match {
	if m == nil {
		return []Match{}
	}
	return m
}
