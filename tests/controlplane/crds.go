package main

import (
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"
)

// writeCRDsAsJSON converts every CRD manifest in from (agent-sandbox's k8s/crds) to JSON in to, which the tests'
// Python reads without a YAML library.
func writeCRDsAsJSON(from, to string) error {
	manifests, err := filepath.Glob(filepath.Join(from, "*.yaml"))
	if err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, manifest := range manifests {
		text, err := os.ReadFile(manifest)
		if err != nil {
			return err
		}
		converted, err := yaml.YAMLToJSON(text)
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(filepath.Base(manifest), ".yaml") + ".json"
		if err := os.WriteFile(filepath.Join(to, name), converted, 0o644); err != nil {
			return err
		}
	}
	return nil
}
