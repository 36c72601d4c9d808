package demo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	retentionv1 "github.com/lethe-dev/lethe/api/v1alpha1"
	"github.com/lethe-dev/lethe/internal/servers"
)

// applySamples applies config/samples: the example Secrets (with the
// throwaway server's password) and every sample except the PurgeJob (Lethe
// creates its own) and the DeletionRequest (filed after the policy run).
func (r *run) applySamples(ctx context.Context) error {
	r.p.step("Applying config/samples into namespace %s", Namespace)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}
	if err := r.env.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}

	b, err := os.ReadFile(filepath.Join(r.root, "config", "samples", "secrets.yaml"))
	if err != nil {
		return err
	}
	secrets, err := decodeYAML(b)
	if err != nil {
		return fmt.Errorf("config/samples/secrets.yaml: %w", err)
	}
	samples, err := r.samples(ctx)
	if err != nil {
		return err
	}
	ds := find(samples, "DataStore")
	if ds == nil {
		return fmt.Errorf("config/samples has no DataStore")
	}
	credentials, _, _ := unstructured.NestedString(ds.Object, "spec", "credentialsSecretRef", "name")
	for _, s := range secrets {
		if s.GetName() == credentials {
			if err := unstructured.SetNestedField(s.Object, r.pg.User, "stringData", "username"); err != nil {
				return err
			}
			if err := unstructured.SetNestedField(s.Object, r.pg.Password, "stringData", "password"); err != nil {
				return err
			}
		}
	}

	// The sample's DataStore points at shop-postgres.shop.svc with verified
	// TLS; this one is on a loopback port without TLS (so without the CA).
	unstructured.RemoveNestedField(ds.Object, "spec", "caBundleSecretRef")
	for field, v := range map[string]any{"host": r.pg.Host, "port": int64(r.pg.Port), "database": shopDatabase, "tls": "Disable"} {
		if err := unstructured.SetNestedField(ds.Object, v, "spec", field); err != nil {
			return err
		}
	}
	if err := r.pointRecipient(samples, secrets); err != nil {
		return err
	}
	now := secrets
	if r.rcv != nil {
		now = append(now, r.receiverCA())
	}
	for _, o := range samples {
		switch o.GetKind() {
		case "PurgeJob": // written by Lethe, not by hand
		case "DeletionRequest":
		case "ErasureReplay": // applied after a restore, with the backup's time
		default:
			now = append(now, o)
		}
	}
	r.p.info("config/samples/secrets.yaml, with the throwaway server's user and password in %s, and", credentials)
	r.p.info("kubectl kustomize config/samples without the PurgeJob (Lethe creates its own), the DeletionRequest (filed")
	r.p.info("later) and the ErasureReplay (applied after a restore), the DataStore rewritten to host %s, port %d, database %s, tls Disable", r.pg.Host, r.pg.Port, shopDatabase)
	if r.rcv != nil {
		r.p.info("and the Recipient %s to the receiver: endpoint %s, its CA in Secret %s, acknowledgement", r.rcv.name, r.rcv.URL, receiverCASecret(r.rcv.name))
		r.p.info("mode Response instead of the sample's Async (whose first poll for an acknowledgement comes 15 to 30s after delivery)")
	}
	var names []string
	for _, st := range r.stores {
		objs, err := st.manifests()
		if err != nil {
			return fmt.Errorf("manifests of %s: %w", st.name(), err)
		}
		now = append(now, objs...)
		names = append(names, strings.ToLower(st.name())+".yaml")
	}
	if len(names) > 0 {
		r.p.info("and the shop's other stores, hack/demo/demo/manifests/{%s}:", strings.Join(names, ","))
	}
	y, err := encodeYAML(now)
	if err != nil {
		return err
	}
	if _, err := r.k.show(ctx, y, "apply", "-f", "-"); err != nil {
		return err
	}

	r.p.step("Waiting for Lethe to connect to the datastores and check the Datasets against them")
	if _, err := r.k.show(ctx, nil, "wait", "--for=condition=Ready", "datastores", "--all", "--timeout=2m"); err != nil {
		return r.explain(ctx, err, "datastores")
	}
	// Datasets and LegalHolds have a status once their controllers are
	// registered (by now they would have written one); PurgeJobs read them
	// either way.
	var kinds []string
	for _, kind := range []string{"Dataset", "LegalHold", "Recipient"} {
		o := find(samples, kind)
		if o == nil {
			continue
		}
		if r.reconciled(ctx, o, time.Second) {
			kinds = append(kinds, strings.ToLower(kind)+"s")
		} else {
			r.p.info("%s/%s: no status, so no %s controller is registered in this build; PurgeJobs read it directly", strings.ToLower(kind), o.GetName(), kind)
		}
	}
	if len(kinds) > 0 {
		if _, err := r.k.show(ctx, nil, "wait", "--for=condition=Ready", strings.Join(kinds, ","), "--all", "--timeout=2m"); err != nil {
			return r.explain(ctx, err, strings.Join(kinds, ","))
		}
	}
	return ctx.Err()
}

// pointRecipient starts the receiver for the Recipient of config/samples
// (the CRM vendor), with the signing secret of config/samples/secrets.yaml,
// and points the Recipient at it: its endpoint, a CA bundle for the
// receiver's throwaway CA, and acknowledgement by a 2xx answer.
func (r *run) pointRecipient(samples, secrets []*unstructured.Unstructured) error {
	rcpt := find(samples, "Recipient")
	if rcpt == nil {
		return nil
	}
	ref, _, _ := unstructured.NestedString(rcpt.Object, "spec", "signingSecretRef", "name")
	key, _, _ := unstructured.NestedString(rcpt.Object, "spec", "signingSecretRef", "key")
	var secret string
	for _, s := range secrets {
		if s.GetName() == ref {
			secret, _, _ = unstructured.NestedString(s.Object, "stringData", key)
		}
	}
	if secret == "" {
		return fmt.Errorf("config/samples/secrets.yaml has no key %s in Secret %s, the signing secret of Recipient %s", key, ref, rcpt.GetName())
	}
	rc, err := startReceiver(rcpt.GetName(), secret, r.p.step)
	if err != nil {
		return fmt.Errorf("starting the receiver of Recipient %s: %w", rcpt.GetName(), err)
	}
	r.rcv = rc
	r.p.step("Started the receiver of Recipient %s (the CRM vendor's endpoint) on %s: HTTPS with a throwaway CA of its own;", rc.name, rc.URL)
	r.p.info("it checks each notice's Standard Webhooks signature with the signing secret of config/samples/secrets.yaml")
	r.p.info("and answers 200 to a valid notice, 401 to anything else")
	for field, v := range map[string]any{
		"endpoint":          rc.URL,
		"caBundleSecretRef": map[string]any{"name": receiverCASecret(rc.name), "key": "ca.crt"},
		"acknowledgement":   map[string]any{"mode": string(retentionv1.AcknowledgeResponse)},
	} {
		if err := unstructured.SetNestedField(rcpt.Object, v, "spec", field); err != nil {
			return err
		}
	}
	return nil
}

func receiverCASecret(recipient string) string { return recipient + "-receiver-ca" }

// receiverCA is the Secret with the receiver's CA, marked for Lethe.
func (r *run) receiverCA() *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "Secret",
		"metadata":   map[string]any{"name": receiverCASecret(r.rcv.name), "labels": map[string]any{retentionv1.LabelSecretConsent: "true"}},
		"type":       "Opaque",
		"stringData": map[string]any{"ca.crt": string(r.rcv.CAPEM)},
	}}
}

// samples returns the objects of kubectl kustomize config/samples (fresh
// copies on every call).
func (r *run) samples(ctx context.Context) ([]*unstructured.Unstructured, error) {
	if r.kustomized == nil {
		out, err := r.k.run(ctx, nil, "kustomize", filepath.Join(r.root, "config", "samples"))
		if err != nil {
			return nil, err
		}
		r.kustomized = []byte(out)
	}
	return decodeYAML(r.kustomized)
}

func find(objs []*unstructured.Unstructured, kind string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind {
			return o
		}
	}
	return nil
}

// reconciled waits up to timeout for a controller to write the object's
// status.
func (r *run) reconciled(ctx context.Context, o *unstructured.Unstructured, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(o.GroupVersionKind())
		if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: o.GetName()}, u); err == nil {
			if st, ok := u.Object["status"].(map[string]any); ok && len(st) > 0 {
				return true
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// explain adds the object's conditions and the manager log's tail to a
// failed wait.
func (r *run) explain(ctx context.Context, err error, ref string) error {
	conds := `{range .status.conditions[*]}  {.type}={.status} {.reason}: {.message}{"\n"}{end}`
	args := []string{"get", ref, "-o", "jsonpath={.metadata.name}{\"\\n\"}" + conds}
	if !strings.Contains(ref, "/") {
		args = []string{"get", ref, "-o", `jsonpath={range .items[*]}{.kind}/{.metadata.name}{"\n"}` + conds + "{end}"}
	}
	out, _ := r.k.run(ctx, nil, args...)
	return fmt.Errorf("%w\nconditions of %s:\n%s\nlast lines of the manager log %s:\n%s", err, ref, out, r.managerLog(), servers.LogTail(r.managerLog(), 15))
}

// waitWhile runs `kubectl wait` in the background and calls check every
// half second while it waits; check may act (release a safety limit) or
// give up with an error.
func (r *run) waitWhile(ctx context.Context, args []string, check func(ctx context.Context) error) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type res struct {
		out string
		err error
	}
	done := make(chan res, 1)
	r.p.cmd("kubectl -n " + Namespace + " " + strings.Join(quoteArgs(args), " "))
	go func() {
		out, err := r.k.run(wctx, nil, args...)
		done <- res{out, err}
	}()
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case x := <-done:
			if x.err == nil {
				r.p.block(x.out)
			}
			return x.err
		case <-tick.C:
			if err := check(ctx); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// policyName is the RetentionPolicy of config/samples.
const policyName = "shop-retention"

// runPolicy triggers a retention policy now and waits for its run.
func (r *run) runPolicy(ctx context.Context, policyName string) error {
	var before retentionv1.PurgeJobList
	if err := r.env.Client.List(ctx, &before, client.InNamespace(Namespace), client.MatchingLabels{retentionv1.LabelPolicy: policyName}); err != nil {
		return err
	}
	token := "demo-" + strconv.FormatInt(time.Now().Unix(), 10)
	r.p.step("Running retention policy %s now instead of on its schedule", policyName)
	if _, err := r.k.show(ctx, nil, "annotate", "retentionpolicy/"+policyName, retentionv1.AnnotationRunNow+"="+token, "--overwrite"); err != nil {
		return err
	}
	if _, err := r.k.show(ctx, nil, "wait", "--for=jsonpath={.status.lastRunNowToken}="+token, "retentionpolicy/"+policyName, "--timeout=1m"); err != nil {
		return r.explain(ctx, err, "retentionpolicy/"+policyName)
	}
	var jobs retentionv1.PurgeJobList
	if err := r.env.Client.List(ctx, &jobs, client.InNamespace(Namespace), client.MatchingLabels{retentionv1.LabelPolicy: policyName}); err != nil {
		return err
	}
	var job *retentionv1.PurgeJob
	for i := range jobs.Items {
		if !slices.ContainsFunc(before.Items, func(j retentionv1.PurgeJob) bool { return j.Name == jobs.Items[i].Name }) {
			job = &jobs.Items[i]
		}
	}
	if job == nil {
		return fmt.Errorf("retention policy %s acknowledged the run but no new PurgeJob exists", policyName)
	}
	r.rep.PolicyRuns[policyName] = job.Name
	if policyName == "shop-retention" {
		r.rep.PolicyRun = job.Name
	}
	var rows [][]string
	rows = append(rows, []string{"COLLECTION", "RULE", "ACTION", "CUTOFF (UTC)"})
	for _, op := range job.Spec.Operations {
		cutoff := "-"
		if op.Cutoff != nil {
			cutoff = op.Cutoff.UTC().Format("2006-01-02 15:04:05")
		}
		rows = append(rows, []string{string(op.Collection), string(op.Rule), string(op.Action), cutoff})
	}
	r.p.step("Lethe created purgejob/%s: %d operations, each with its cutoff fixed now", job.Name, len(job.Spec.Operations))
	r.p.block(table(rows))

	ref := "purgejob/" + job.Name
	t0 := time.Now()
	lastProgress, lastPrinted, releasedAt, lastProblem := "", time.Time{}, time.Time{}, ""
	check := func(ctx context.Context) error {
		var j retentionv1.PurgeJob
		if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: job.Name}, &j); err != nil {
			return nil // transient; kubectl wait keeps going
		}
		switch j.Status.Phase {
		case retentionv1.PurgeJobStalled:
			c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled)
			if c == nil {
				return nil
			}
			if c.Reason != retentionv1.ReasonSafetyLimitExceeded {
				return fmt.Errorf("%s stalled: %s: %s", ref, c.Reason, c.Message)
			}
			if r.rep.SafetyReleased {
				// Released: the policy passes the release on to the job,
				// which counts again and proceeds.
				if time.Since(releasedAt) > time.Minute {
					return fmt.Errorf("%s still stalled a minute after its release: %s: %s", ref, c.Reason, c.Message)
				}
				return nil
			}
			r.p.step("The run stopped before changing anything: Stalled, %s", c.Reason)
			r.p.info("%s", wrap(c.Message, 110))
			r.p.info("A first run over a backlog touches far more than a nightly one; the policy's safety.maxPercent (%s)",
				percent(j.Spec.Safety))
			r.p.info("stops it until a human looks. The demo releases this one run, as an operator would after reading the counts:")
			if _, err := r.k.show(ctx, nil, "annotate", "retentionpolicy/"+policyName, retentionv1.AnnotationReleaseRun+"="+job.Name, "--overwrite"); err != nil {
				return err
			}
			r.rep.SafetyReleased, releasedAt = true, time.Now()
		case retentionv1.PurgeJobFailed:
			c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionStalled)
			msg := "no condition"
			if c != nil {
				msg = c.Reason + ": " + c.Message
			}
			return fmt.Errorf("%s failed: %s", ref, msg)
		case retentionv1.PurgeJobRunning, retentionv1.PurgeJobPending, "":
			// A run that cannot proceed says why in Ready (and retries).
			if c := meta.FindStatusCondition(j.Status.Conditions, retentionv1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue &&
				c.Reason != retentionv1.ReasonRunning && c.Reason != retentionv1.ReasonProgressing && c.Reason+c.Message != lastProblem {
				lastProblem = c.Reason + c.Message
				r.p.step("Not progressing: %s: %s", c.Reason, c.Message)
			}
			if j.Status.Phase != retentionv1.PurgeJobRunning {
				return nil
			}
			progress := fmt.Sprintf("%s records deleted and %s anonymized so far", num(j.Status.Deleted), num(j.Status.Anonymized))
			if progress != lastProgress && time.Since(lastPrinted) > 2*time.Second {
				r.p.step("Running: %s", progress)
				lastProgress, lastPrinted = progress, time.Now()
			}
		}
		return nil
	}
	r.p.step("Waiting for the run (kubectl wait, while the demo watches the PurgeJob's status)")
	if err := r.waitWhile(ctx, []string{"wait", "--for=condition=Ready", ref, "--timeout=10m"}, check); err != nil {
		return r.explain(ctx, err, ref)
	}
	var j retentionv1.PurgeJob
	if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: job.Name}, &j); err != nil {
		return err
	}
	took := "in " + seconds(time.Since(t0))
	if j.Status.StartTime != nil && j.Status.CompletionTime != nil {
		// Second resolution.
		if d := j.Status.CompletionTime.Sub(j.Status.StartTime.Time); d < time.Second {
			took = "in under a second"
		} else {
			took = "in " + d.String()
		}
	}
	r.p.step("Run %s: %s, %s records deleted and %s anonymized %s", job.Name, j.Status.Phase, num(j.Status.Deleted), num(j.Status.Anonymized), took)
	if _, err := r.k.show(ctx, nil, "wait", "--for=condition=Ready", "retentionpolicy/"+policyName, "--timeout=2m"); err != nil {
		return r.explain(ctx, err, "retentionpolicy/"+policyName)
	}
	return nil
}

func percent(s *retentionv1.SafetyLimits) string {
	if s == nil || s.MaxPercent == nil {
		return "none"
	}
	return strconv.Itoa(int(*s.MaxPercent)) + "%"
}

// deletionRequests files the account cancellation of config/samples and
// the minor's request, and follows them as far as this build handles them.
func (r *run) deletionRequests(ctx context.Context) error {
	store, err := r.samples(ctx)
	if err != nil {
		return err
	}
	var objs []*unstructured.Unstructured
	for _, o := range store {
		if o.GetKind() == "DeletionRequest" {
			objs = append(objs, o)
		}
	}
	b, err := manifests.ReadFile("manifests/minor.yaml")
	if err != nil {
		return err
	}
	minor, err := decodeYAML(b)
	if err != nil {
		return err
	}
	objs = append(objs, minor...)
	var names []string
	for _, o := range objs {
		if o.GetKind() == "DeletionRequest" {
			names = append(names, o.GetName())
		}
	}
	r.requests = names
	r.p.step("Filing deletion requests: %s", strings.Join(names, " and "))
	r.p.info("(an account cancellation from config/samples, scoped to Dataset shop, and a minor's data from")
	r.p.info("hack/demo/demo/manifests/minor.yaml, without a scope: every Dataset of the namespace)")
	y, err := encodeYAML(objs)
	if err != nil {
		return err
	}
	if _, err := r.k.show(ctx, y, "apply", "-f", "-"); err != nil {
		return err
	}

	// A DeletionRequest controller writes status within a second or two.
	handled := false
	deadline := time.Now().Add(15 * time.Second)
	for _, o := range objs {
		if o.GetKind() == "DeletionRequest" && r.reconciled(ctx, o, time.Until(deadline)) {
			handled = true
			break
		}
	}
	r.rep.RequestsHandled = handled
	if !handled {
		r.p.step("No controller wrote a status on the DeletionRequests within 15s: this build has no DeletionRequest controller")
		r.p.info("(controllers.Setup registers none yet). Both requests stay pending; nothing was erased for them.")
		return nil
	}

	for _, name := range names {
		var dr retentionv1.DeletionRequest
		if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &dr); err != nil {
			return err
		}
		ref := "deletionrequest/" + name
		if dr.Spec.Reason == retentionv1.ReasonMinor {
			r.p.step("Waiting for the minor's data to be erased (no review window)")
			check := func(ctx context.Context) error {
				var d retentionv1.DeletionRequest
				if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &d); err == nil && d.Status.Phase == "Failed" {
					return fmt.Errorf("%s failed", ref)
				}
				return nil
			}
			if err := r.waitWhile(ctx, []string{"wait", "--for=jsonpath={.status.phase}=Completed", ref, "--timeout=3m"}, check); err != nil {
				return r.explain(ctx, err, ref)
			}
			if err := r.waitNotices(ctx, name); err != nil {
				return err
			}
			continue
		}
		// The account cancellation waits for its review window (48 hours):
		// wait until Lethe has put it there.
		deadline := time.Now().Add(30 * time.Second)
		for dr.Status.Phase == "" || dr.Status.Phase == "Pending" {
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(300 * time.Millisecond)
			if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &dr); err != nil {
				return err
			}
		}
		msg := fmt.Sprintf("%s: phase %s", ref, dr.Status.Phase)
		if dr.Status.NotBefore != nil {
			msg += fmt.Sprintf(", review window until %s", dr.Status.NotBefore.UTC().Format(time.RFC3339))
		}
		r.p.step("%s", msg)
	}
	return nil
}

// waitNotices waits until the Recipients of a completed request have
// acknowledged its erasure notices (condition RecipientsNotified).
func (r *run) waitNotices(ctx context.Context, name string) error {
	var dr retentionv1.DeletionRequest
	if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &dr); err != nil {
		return err
	}
	if len(dr.Status.Recipients) == 0 {
		if c := meta.FindStatusCondition(dr.Status.Conditions, retentionv1.ConditionRecipientsNotified); c != nil {
			r.p.step("No erasure notice to send for deletionrequest/%s: %s", name, c.Message)
		}
		return nil
	}
	var names []string
	for _, n := range dr.Status.Recipients {
		names = append(names, n.Name)
	}
	ref := "deletionrequest/" + name
	r.p.step("Waiting for Recipient %s to acknowledge the erasure notice (Lethe sends it once the erasure completed)", strings.Join(names, ", "))
	check := func(ctx context.Context) error {
		var d retentionv1.DeletionRequest
		if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &d); err != nil {
			return nil // transient; kubectl wait keeps going
		}
		for _, n := range d.Status.Recipients {
			if n.State == retentionv1.NoticeFailed {
				return fmt.Errorf("%s: the erasure notice to Recipient %s failed: %s: %s", ref, n.Name, n.Reason, n.Message)
			}
		}
		return nil
	}
	if err := r.waitWhile(ctx, []string{"wait", "--for=condition=" + retentionv1.ConditionRecipientsNotified, ref, "--timeout=2m"}, check); err != nil {
		return r.explain(ctx, err, ref)
	}
	return nil
}

// printBefore prints what the stores hold before Lethe acts.
func (r *run) printBefore() {
	s := r.rep.Before
	r.p.step("Read back from the datastores before Lethe acts (counted, not estimated):")
	rows := [][]string{{"STORE", "TABLE / KEYS / OBJECTS", "RECORDS", "PAST ITS RETENTION PERIOD (PROMISE)"}}
	for _, t := range s.Tables {
		var due []string
		for _, p := range s.Promises {
			if p.Store == t.Store && p.Table == t.Table {
				due = append(due, fmt.Sprintf("%s (%s)", num(p.Violations), p.Name))
			}
		}
		if len(due) == 0 {
			due = []string{"-"}
		}
		rows = append(rows, []string{t.Store, t.Table, num(t.Rows), strings.Join(due, "; ")})
	}
	r.p.block(table(rows))
}

// printResults prints what happened.
func (r *run) printResults(ctx context.Context) error {
	r.p.heading("What Lethe did")
	if _, err := r.k.show(ctx, nil, "get", "lethe", "-o", "wide"); err != nil {
		return err
	}

	for _, policy := range r.policies() {
		name := r.rep.PolicyRuns[policy]
		var job retentionv1.PurgeJob
		if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &job); err != nil {
			return err
		}
		r.p.plain(fmt.Sprintf("\nThe run of %s, per operation (status.operations of purgejob/%s):", policy, name))
		rows := [][]string{{"COLLECTION", "RULE", "ACTION", "MATCHED", "DELETED", "ANONYMIZED", "BATCHES", "PARTITIONS DROPPED", "PHASE"}}
		for i, st := range job.Status.Operations {
			op := job.Spec.Operations[i]
			rows = append(rows, []string{st.Collection, string(op.Rule), string(op.Action), num(st.Matched), num(st.Deleted), num(st.Anonymized),
				num(st.Batches), num(int64(st.PartitionsDropped)), string(st.Phase)})
		}
		r.p.block(table(rows))
		if policy == policyName {
			r.p.info("(an operation counts before any of them runs: the 90-day anonymization of browsing_logs matched rows that the")
			r.p.info("180-day deletion before it then removed)")
			if _, err := r.k.show(ctx, nil, "events", "--for", "purgejob/"+name); err != nil {
				return err
			}
		}
	}

	r.p.plain("\nRecords per table, read back from each datastore (SQL count(*), Redis SCAN, S3 listing):")
	head := []string{"STORE", "TABLE / KEYS / OBJECTS", "BEFORE", "AFTER POLICY RUNS"}
	if r.rep.RequestsHandled {
		head = append(head, "AFTER REQUESTS")
	}
	head = append(head, "GONE", "ANONYMIZED (ALL FIELDS REWRITTEN)")
	rows := [][]string{head}
	for _, t := range r.rep.Before.Tables {
		ap, af := r.rep.AfterPolicy.TableOf(t.Store, t.Table), r.rep.After.TableOf(t.Store, t.Table)
		row := []string{t.Store, t.Table, num(t.Rows), num(ap.Rows)}
		if r.rep.RequestsHandled {
			row = append(row, num(af.Rows))
		}
		row = append(row, num(t.Rows-af.Rows), num(af.Anonymized))
		rows = append(rows, row)
	}
	r.p.block(table(rows))

	r.p.plain("\nThe privacy policy's promises, checked in the datastores: records past their period still there, or still identifying")
	rows = [][]string{{"PROMISE", "STORE", "TABLE", "BEFORE", "AFTER", "OF THOSE, UNDER LEGAL HOLD"}}
	for i, p := range r.rep.Before.Promises {
		a := r.rep.After.Promises[i]
		rows = append(rows, []string{p.Name, p.Store, p.Table, num(p.Violations), num(a.Violations), num(a.Held)})
	}
	r.p.block(table(rows))
	r.p.info("(legal hold case-2026-sh-0142 keeps orders, order items and support messages of users 100042, 100317 and")
	r.p.info("grace@example.com; Lethe excludes them inside every statement)")

	r.p.plain("\nRecords that still identify the people of the deletion requests:")
	rows = [][]string{{"STORE", "TABLE / KEYS / OBJECTS"}}
	for _, s := range r.rep.Before.Subjects {
		rows[0] = append(rows[0], strings.ToUpper(strings.SplitN(s.Who, " (", 2)[0])+" BEFORE", "AFTER")
	}
	for _, t := range r.rep.Before.Tables {
		row := []string{t.Store, t.Table}
		for i, s := range r.rep.Before.Subjects {
			k := Key(t.Store, t.Table)
			row = append(row, num(s.Rows[k]), num(r.rep.After.Subjects[i].Rows[k]))
		}
		rows = append(rows, row)
	}
	r.p.block(table(rows))
	// Who they are, without their identifiers: the demo's output shows no
	// identity value of the people it follows (test/demo checks).
	for _, s := range r.rep.Before.Subjects {
		name, about, _ := strings.Cut(s.Who, " (")
		r.p.info("%s: %s", name, strings.TrimSuffix(about, ")"))
	}

	r.p.plain("\nDeletion requests and their receipts:")
	if _, err := r.k.show(ctx, nil, "get", "deletionrequests", "-o", "wide"); err != nil {
		return err
	}
	if !r.rep.RequestsHandled {
		r.p.info("Not handled by this build: no DeletionRequest controller is registered in controllers.Setup yet,")
		r.p.info("so the requests have no status and no receipt. Nothing above was erased for them.")
		return nil
	}
	for _, name := range r.requests {
		var dr retentionv1.DeletionRequest
		if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: name}, &dr); err != nil {
			return err
		}
		r.p.info("deletionrequest/%s (%s): phase %s", name, dr.Spec.Reason, dr.Status.Phase)
		for _, c := range dr.Status.Conditions {
			r.p.info("  %s=%s %s: %s", c.Type, c.Status, c.Reason, c.Message)
		}
		for _, pj := range dr.Status.PurgeJobs {
			var job retentionv1.PurgeJob
			if err := r.env.Client.Get(ctx, client.ObjectKey{Namespace: Namespace, Name: pj}, &job); err == nil {
				r.p.info("  purgejob/%s (Dataset %s): %s, %s deleted, %s anonymized", pj, job.Spec.DatasetRef.Name, job.Status.Phase, num(job.Status.Deleted), num(job.Status.Anonymized))
			}
		}
		if rc := dr.Status.Receipt; rc != nil {
			r.p.info("  receipt: subject %s, verified %v, sha256 %s", rc.SubjectDigest, rc.Verified, rc.SHA256)
			rows := [][]string{{"DATASET", "COLLECTION", "ACTION", "RECORDS"}}
			for _, e := range rc.Entries {
				rows = append(rows, []string{e.Dataset, e.Collection, string(e.Action), num(e.Rows)})
			}
			r.p.block("  " + strings.ReplaceAll(strings.TrimRight(table(rows), "\n"), "\n", "\n  "))
			for _, a := range rc.Acknowledgements {
				r.p.info("  acknowledged by Recipient %s at %s (notice %s)", a.Recipient, a.AcknowledgedAt.UTC().Format(time.RFC3339), a.NoticeID)
			}
		}
		for _, n := range dr.Status.Recipients {
			r.p.info("  erasure notice to Recipient %s (status.recipients): %s after %d attempt(s), %s: %s", n.Name, n.State, n.Attempts, n.Reason, n.Message)
		}
	}
	if r.rcv != nil {
		r.rep.Notices = r.rcv.Received()
		r.p.plain(fmt.Sprintf("\nWhat the receiver of Recipient %s got (it logs no identity value, only their types):", r.rcv.name))
		rows := [][]string{{"WEBHOOK-ID", "REQUEST ID", "DELETION REQUEST", "IDENTITY TYPES", "SIGNATURE", "ANSWER"}}
		for _, n := range r.rep.Notices {
			sig := "verified"
			if !n.Verified {
				sig = "rejected: " + n.Problem
			}
			rows = append(rows, []string{n.NoticeID, n.RequestID, n.Request, strings.Join(n.IdentityTypes, ","), sig, strconv.Itoa(n.Status)})
		}
		if len(r.rep.Notices) == 0 {
			rows = append(rows, []string{"(nothing)"})
		}
		r.p.block(table(rows))
	}
	return nil
}

// wrap breaks s into lines of at most width characters.
func wrap(s string, width int) string {
	var b strings.Builder
	line := 0
	for _, w := range strings.Fields(s) {
		if line > 0 && line+1+len(w) > width {
			b.WriteString("\n")
			line = 0
		} else if line > 0 {
			b.WriteString(" ")
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	return b.String()
}
