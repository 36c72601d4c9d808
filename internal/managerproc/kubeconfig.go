package managerproc

import (
	"errors"
	"path/filepath"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// writeKubeconfig writes cfg as dir/kubeconfig (mode 0600: it holds the
// client key) and returns its path. What a kubeconfig cannot carry is an
// error rather than silently dropped: the manager would run differently.
func writeKubeconfig(dir string, cfg *rest.Config) (string, error) {
	switch {
	case cfg.WrapTransport != nil, cfg.Transport != nil, cfg.Dial != nil:
		return "", errors.New("managerproc: a kubeconfig cannot carry the rest.Config's Transport, WrapTransport or Dial; run a proxy instead")
	case cfg.AuthProvider != nil, cfg.ExecProvider != nil:
		return "", errors.New("managerproc: auth and exec providers are not supported")
	}
	server := cfg.Host
	if !strings.Contains(server, "://") {
		server = "https://" + server
	}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["lethe"] = &clientcmdapi.Cluster{
		Server:                   server,
		CertificateAuthority:     cfg.CAFile,
		CertificateAuthorityData: cfg.CAData,
		InsecureSkipTLSVerify:    cfg.Insecure,
		TLSServerName:            cfg.ServerName,
	}
	kc.AuthInfos["lethe-manager"] = &clientcmdapi.AuthInfo{
		ClientCertificate:     cfg.CertFile,
		ClientCertificateData: cfg.CertData,
		ClientKey:             cfg.KeyFile,
		ClientKeyData:         cfg.KeyData,
		Token:                 cfg.BearerToken,
		TokenFile:             cfg.BearerTokenFile,
		Username:              cfg.Username,
		Password:              cfg.Password,
		Impersonate:           cfg.Impersonate.UserName,
		ImpersonateUID:        cfg.Impersonate.UID,
		ImpersonateGroups:     cfg.Impersonate.Groups,
		ImpersonateUserExtra:  cfg.Impersonate.Extra,
	}
	kc.Contexts["lethe"] = &clientcmdapi.Context{Cluster: "lethe", AuthInfo: "lethe-manager"}
	kc.CurrentContext = "lethe"
	path := filepath.Join(dir, "kubeconfig")
	return path, clientcmd.WriteToFile(*kc, path)
}
