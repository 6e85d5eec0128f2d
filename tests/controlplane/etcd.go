package main

import (
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"go.etcd.io/etcd/server/v3/embed"
)

// runEtcd serves one etcd member on clientURL (loopback) with its data in dataDir until SIGTERM or SIGINT. Its peer
// listener takes a free loopback port: a single member never dials it.
func runEtcd(dataDir, clientURL string) error {
	client, err := url.Parse(clientURL)
	if err != nil {
		return fmt.Errorf("client URL %q: %w", clientURL, err)
	}
	peer, _ := url.Parse("http://127.0.0.1:0")
	cfg := embed.NewConfig()
	cfg.Dir = dataDir
	cfg.Name = "controlplane"
	cfg.ListenClientUrls = []url.URL{*client}
	cfg.AdvertiseClientUrls = []url.URL{*client}
	cfg.ListenPeerUrls = []url.URL{*peer}
	cfg.AdvertisePeerUrls = []url.URL{{Scheme: "http", Host: "127.0.0.1:2380"}}
	cfg.InitialCluster = cfg.Name + "=http://127.0.0.1:2380"
	cfg.LogLevel = "warn"
	// The tests' data is thrown away with the control plane: syncing every write to disk only slows them.
	cfg.UnsafeNoFsync = true
	server, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	defer server.Close()
	<-server.Server.ReadyNotify()
	fmt.Println("etcd ready on", clientURL)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-stop:
		return nil
	case err := <-server.Err():
		return err
	}
}
