package gitops

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"

	"github.com/lethe-dev/lethe/internal/helmchart"
)

// argoHealth runs an Argo CD health script on obj as Argo CD does: obj is
// the global "obj", only the safe standard libraries are open, and the
// script returns a table with status and message.
func argoHealth(script string, obj map[string]any) (status, message string, err error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.StringLibName, lua.OpenString},
		{lua.MathLibName, lua.OpenMath},
		{lua.CoroutineLibName, lua.OpenCoroutine},
	} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	ret, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	if m := ret.RawGetString("message"); m != lua.LNil {
		message = m.String()
	}
	return ret.RawGetString("status").String(), message, nil
}

// toLua converts an unstructured value to Lua, as Argo CD does: maps and
// lists become tables, numbers numbers.
func toLua(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, e := range v {
			t.Append(toLua(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int64:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	}
	panic(fmt.Sprintf("unexpected %T", v))
}

var argoStatuses = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true}

// The health script gives every fixture the health and message its kind's
// health_test.yaml expects.
func TestArgoCDHealth(t *testing.T) {
	script := readScript(t)
	for _, f := range fixtures(t) {
		t.Run(f.path, func(t *testing.T) {
			status, message, err := argoHealth(script, f.object.Object)
			if err != nil {
				t.Fatal(err)
			}
			if !argoStatuses[status] {
				t.Errorf("status %q is not an Argo CD health status", status)
			}
			if status != f.status || message != f.message {
				t.Errorf("health = %s %q; want %s %q", status, message, f.status, f.message)
			}
		})
	}
}

func readScript(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(argoDir(t), "health.lua"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Each kind's health.lua and each key of argocd-cm.yaml is the one script
// (`make manifests` copies it).
func TestArgoCDCopiesAreCurrent(t *testing.T) {
	script := readScript(t)
	var cm struct{ Data map[string]string }
	b, err := os.ReadFile(filepath.Join(argoDir(t), "argocd-cm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &cm); err != nil {
		t.Fatal(err)
	}
	for _, kind := range helmchart.ArgoKinds {
		got, err := os.ReadFile(filepath.Join(argoDir(t), "retention.lethe.dev_"+kind, "health.lua"))
		if err != nil || !bytes.Equal(got, []byte(script)) {
			t.Errorf("config/argocd/retention.lethe.dev_%s/health.lua differs from config/argocd/health.lua (%v); run `make manifests`", kind, err)
		}
		if cm.Data["resource.customizations.health.retention.lethe.dev_"+kind] != script {
			t.Errorf("argocd-cm.yaml's health check of %s differs from config/argocd/health.lua; run `make manifests`", kind)
		}
	}
	if len(cm.Data) != len(helmchart.ArgoKinds) {
		t.Errorf("argocd-cm.yaml has %d keys; want %d", len(cm.Data), len(helmchart.ArgoKinds))
	}
}
