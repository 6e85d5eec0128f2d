package main

// The kubelet's port-forward endpoint, for the pod runner that stands in for the kubelet: the API server proxies
// `kubectl port-forward` (pods/portforward) to the node's kubelet, which serves it with the upstream streaming
// package (k8s.io/cri-streaming, what the kubelet itself uses) and connects each forwarded stream to the port on the
// pod's loopback, inside the pod's network namespace, as a container runtime does. The pod runner says which
// network namespace holds which pod: a file per pod in NETNS_DIR, named NAMESPACE_POD, holding the namespace's name.

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/apimachinery/pkg/util/remotecommand"
	"k8s.io/cri-streaming/pkg/streaming/portforward"
)

type podNetworks struct{ dir string }

// PortForward copies between the stream and loopback port `port` of pod `name` ("NAMESPACE/POD").
func (p podNetworks) PortForward(ctx context.Context, name string, _ string, port int32, stream io.ReadWriteCloser) error {
	defer stream.Close() //nolint:errcheck
	recorded, err := os.ReadFile(filepath.Join(p.dir, strings.ReplaceAll(name, "/", "_")))
	if err != nil {
		return fmt.Errorf("pod %s runs on no network namespace this node knows: %w", name, err)
	}
	conn, err := dialInNetns(strings.TrimSpace(string(recorded)), fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return fmt.Errorf("pod %s port %d: %w", name, port, err)
	}
	defer conn.Close() //nolint:errcheck
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(conn, stream); done <- struct{}{} }()
	go func() { _, _ = io.Copy(stream, conn); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	return nil
}

// dialInNetns connects from inside the named network namespace. The thread that entered it stays locked and ends
// with its goroutine (Go discards a thread left locked), so no other goroutine ever runs in the pod's namespace.
func dialInNetns(netns, address string) (net.Conn, error) {
	type dialed struct {
		conn net.Conn
		err  error
	}
	result := make(chan dialed, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open(filepath.Join("/run/netns", netns), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			result <- dialed{nil, err}
			return
		}
		defer unix.Close(fd) //nolint:errcheck
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			result <- dialed{nil, err}
			return
		}
		conn, err := net.DialTimeout("tcp", address, 5*time.Second)
		result <- dialed{conn, err}
	}()
	got := <-result
	return got.conn, got.err
}

// runKubelet serves /portForward/NAMESPACE/POD over TLS on address until the process is stopped.
func runKubelet(address, certFile, keyFile, netnsDir string) error {
	networks := podNetworks{dir: netnsDir}
	mux := http.NewServeMux()
	mux.HandleFunc("/portForward/{namespace}/{pod}", func(w http.ResponseWriter, req *http.Request) {
		name := req.PathValue("namespace") + "/" + req.PathValue("pod")
		portforward.ServePortForward(
			w, req, networks, name, "", &portforward.V4Options{},
			4*time.Hour, remotecommand.DefaultStreamCreationTimeout,
			[]string{portforward.ProtocolV1Name},
		)
	})
	server := &http.Server{Addr: address, Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return server.ListenAndServeTLS(certFile, keyFile)
}
