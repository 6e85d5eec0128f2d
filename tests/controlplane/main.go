// Command controlplane is the tests' Kubernetes control plane: one binary that runs, by its first argument, an
// embedded etcd, the real kube-apiserver, the real kube-controller-manager (for its garbage collector) or the kubelet's
// port-forward endpoint (beside the tests' pod runner, which stands in for the rest of the kubelet), and that
// writes what they need (certificates and keys; agent-sandbox's CRDs as JSON). The tests start each component as a
// process of its own so that they can stop and restart one (an API server restarted mid-load) while the others go
// on. Only upstream packages run here: these files are the glue that chooses one and feeds it its flags.
package main

import (
	"fmt"
	"os"
	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

const usage = "usage: controlplane pki DIR | crds FROM TO | etcd DATA_DIR CLIENT_URL | kube-apiserver FLAGS... | kube-controller-manager FLAGS... | kubelet ADDRESS CERT KEY NETNS_DIR"

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	component, args := os.Args[1], os.Args[2:]
	switch component {
	case "pki":
		if len(args) != 1 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		if err := writePKI(args[0]); err != nil {
			fmt.Fprintln(os.Stderr, "pki:", err)
			os.Exit(1)
		}
	case "crds":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		if err := writeCRDsAsJSON(args[0], args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "crds:", err)
			os.Exit(1)
		}
	case "etcd":
		if len(args) != 2 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		if err := runEtcd(args[0], args[1]); err != nil {
			fmt.Fprintln(os.Stderr, "etcd:", err)
			os.Exit(1)
		}
	case "kube-apiserver":
		command := apiserver.NewAPIServerCommand()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	case "kube-controller-manager":
		command := controllermanager.NewControllerManagerCommand()
		command.SetArgs(args)
		os.Exit(cli.Run(command))
	case "kubelet":
		if len(args) != 4 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		if err := runKubelet(args[0], args[1], args[2], args[3]); err != nil {
			fmt.Fprintln(os.Stderr, "kubelet:", err)
			os.Exit(1)
		}
	default:
		fmt.Fprintf(os.Stderr, "controlplane: unknown component %q\n%s\n", component, usage)
		os.Exit(2)
	}
}
