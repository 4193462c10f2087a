// Package capi runs nodecycle as a Cluster API user does: a kind management
// cluster of the project's node image, clusterctl init with Cluster API's
// own providers (core, kubeadm bootstrap and control plane, and CAPD, the
// Docker infrastructure provider), cert-manager, and nodecycle as an addon
// provider, every one from an image built on this machine; then workload
// clusters whose Machines are CAPD containers of the same node image, with
// real kubelets, rebooted, replaced and updated by nodecycle.
package capi

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/nodecycle/nodecycle/internal/release"
	"github.com/nodecycle/nodecycle/test/framework/localkube"
)

// CAPIVersion is the version of Cluster API's providers: go.mod's.
const CAPIVersion = "v1.14.2"

// CertManagerVersion is the version of cert-manager's packages in
// hack/tools/certmanager.
const CertManagerVersion = "v1.21.2"

// provider is one of Cluster API's providers in clusterctl's repository.
type provider struct {
	name, kind string // clusterctl's name and provider type
	label      string // the repository's folder: clusterctl's provider label
	file       string // the components file's name
	module     string // the Go module holding its kustomize configuration
	config     string // the configuration inside the module
	image      string // the image built by hack/capd/provider-images.sh
}

var providers = []provider{
	{"cluster-api", "CoreProvider", "cluster-api", "core-components.yaml", "sigs.k8s.io/cluster-api", "core/config/default", "nodecycle/capi-core"},
	{"kubeadm", "BootstrapProvider", "bootstrap-kubeadm", "bootstrap-components.yaml", "sigs.k8s.io/cluster-api", "bootstrap/kubeadm/config/default", "nodecycle/capi-kubeadm-bootstrap"},
	{"kubeadm", "ControlPlaneProvider", "control-plane-kubeadm", "control-plane-components.yaml", "sigs.k8s.io/cluster-api", "controlplane/kubeadm/config/default", "nodecycle/capi-kubeadm-control-plane"},
	{"docker", "InfrastructureProvider", "infrastructure-docker", "infrastructure-components.yaml", "sigs.k8s.io/cluster-api/test", "infrastructure/docker/config/default", "nodecycle/capd"},
}

// ProviderImages are the images of Cluster API's providers and
// cert-manager that the management cluster runs.
func ProviderImages() []string {
	images := []string{CertManagerImage()}
	for _, p := range providers {
		images = append(images, p.image+":"+CAPIVersion)
	}
	return images
}

// CertManagerImage is hack/tools/certmanager's image.
func CertManagerImage() string { return "nodecycle/cert-manager:" + CertManagerVersion }

// Repository writes clusterctl's local repository into dir: each provider's
// components from its own kustomize configuration in the module cache, with
// the image built here; nodecycle's addon release of version (make
// release); cert-manager's CRDs and hack/capd/cert-manager.yaml. It returns
// the clusterctl configuration file that names them.
func Repository(ctx context.Context, dir, version, nodecycleImage string) (string, error) {
	var config strings.Builder
	config.WriteString("providers:\n")
	coreMetadata, err := os.ReadFile(filepath.Join(toolsModuleDir("capi", "sigs.k8s.io/cluster-api"), "metadata.yaml"))
	if err != nil {
		return "", err
	}
	for _, p := range providers {
		var url string
		if url, err = writeProvider(ctx, dir, p, coreMetadata); err != nil {
			return "", err
		}
		fmt.Fprintf(&config, "- name: %s\n  type: %s\n  url: %s\n", p.name, p.kind, url)
	}

	kustomized, err := kustomize(ctx, filepath.Join(localkube.RepoRoot(), "config", "release"))
	if err != nil {
		return "", err
	}
	components, metadata, err := release.Render(version, kustomized)
	if err != nil {
		return "", err
	}
	url, err := write(dir, "addon-nodecycle", version, "addon-components.yaml", components, metadata)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&config, "- name: nodecycle\n  type: AddonProvider\n  url: %s\n", url)
	// One replica, the in-place update hooks on, and a reboot that gives
	// up after 3 minutes (a CAPD node is back in well under one).
	fmt.Fprintf(&config, "NODECYCLE_IMAGE: %s\nNODECYCLE_AGENT_IMAGE: %s\nNODECYCLE_REPLICAS: \"1\"\n", nodecycleImage, nodecycleImage)
	config.WriteString("NODECYCLE_IN_PLACE_UPDATES_PORT: \"9444\"\nNODECYCLE_REBOOT_TIMEOUT: 3m\n")

	certManager, err := certManagerManifest()
	if err != nil {
		return "", err
	}
	url, err = write(dir, "cert-manager", CertManagerVersion, "cert-manager.yaml", certManager, nil)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(&config, "cert-manager:\n  url: %s\n  version: %s\n", url, CertManagerVersion)

	file := filepath.Join(dir, "clusterctl.yaml")
	return file, os.WriteFile(file, []byte(config.String()), 0o644)
}

// writeProvider writes p's components, from its kustomize configuration
// with the image built here, and core's metadata (every provider is
// released with core's version and contract), and returns their URL.
func writeProvider(ctx context.Context, dir string, p provider, metadata []byte) (string, error) {
	kustomized, err := kustomize(ctx, filepath.Join(toolsModuleDir("capi", p.module), p.config))
	if err != nil {
		return "", err
	}
	// clusterctl wants image names in their canonical form.
	components, err := withImage(kustomized, "docker.io/"+p.image+":"+CAPIVersion)
	if err != nil {
		return "", fmt.Errorf("%s: %w", p.label, err)
	}
	return write(dir, p.label, CAPIVersion, p.file, components, metadata)
}

// write puts a provider's components (and metadata, if any) where
// clusterctl's local repository looks for them, and returns the URL.
func write(dir, label, version, file string, components, metadata []byte) (string, error) {
	folder := filepath.Join(dir, label, version)
	if err := os.MkdirAll(folder, 0o755); err != nil {
		return "", err
	}
	if metadata != nil {
		if err := os.WriteFile(filepath.Join(folder, "metadata.yaml"), metadata, 0o644); err != nil {
			return "", err
		}
	}
	path := filepath.Join(folder, file)
	return "file://" + path, os.WriteFile(path, components, 0o644)
}

// kustomize renders a kustomize configuration with the kubectl of make
// tools.
func kustomize(ctx context.Context, dir string) ([]byte, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, filepath.Join(localkube.Assets(), "kubectl"), "kustomize", dir)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("kubectl kustomize %s: %w\n%s", dir, err, stderr.String())
	}
	return out, nil
}

// withImage sets the image of every Deployment's manager container, pulled
// only if the node does not have it (there is no registry).
func withImage(manifest []byte, image string) ([]byte, error) {
	docs := splitYAML(manifest)
	found := false
	for i, doc := range docs {
		var u unstructured.Unstructured
		if err := yaml.Unmarshal(doc, &u.Object); err != nil {
			return nil, err
		}
		if u.GetKind() != "Deployment" {
			continue
		}
		containers, _, _ := unstructured.NestedSlice(u.Object, "spec", "template", "spec", "containers")
		for _, c := range containers {
			if m := c.(map[string]any); m["name"] == "manager" {
				m["image"], m["imagePullPolicy"] = image, "IfNotPresent"
				found = true
			}
		}
		if err := unstructured.SetNestedSlice(u.Object, containers, "spec", "template", "spec", "containers"); err != nil {
			return nil, err
		}
		out, err := yaml.Marshal(u.Object)
		if err != nil {
			return nil, err
		}
		docs[i] = out
	}
	if !found {
		return nil, fmt.Errorf("no Deployment with a container named manager")
	}
	return bytes.Join(docs, []byte("---\n")), nil
}

// certManagerManifest is cert-manager's CRDs from its module and
// hack/capd/cert-manager.yaml.
func certManagerManifest() ([]byte, error) {
	dir := filepath.Join(toolsModuleDir("certmanager", "github.com/cert-manager/cert-manager"), "deploy", "crds")
	crds, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(crds) == 0 {
		return nil, fmt.Errorf("cert-manager's CRDs are not in %s (make capi-tools downloads the module): %w", dir, err)
	}
	var out bytes.Buffer
	for _, f := range crds {
		var b []byte
		if b, err = os.ReadFile(f); err != nil {
			return nil, err
		}
		out.WriteString("---\n")
		out.Write(bytes.TrimPrefix(b, []byte("---\n")))
	}
	rest, err := os.ReadFile(filepath.Join(localkube.RepoRoot(), "hack", "capd", "cert-manager.yaml"))
	if err != nil {
		return nil, err
	}
	out.WriteString("---\n")
	out.Write(bytes.ReplaceAll(rest, []byte("nodecycle/cert-manager:CERT_MANAGER_VERSION"), []byte("docker.io/"+CertManagerImage())))
	return out.Bytes(), nil
}

// toolsModuleDir is where a module that the tools module hack/tools/<tools>
// requires is (make capi-tools has downloaded it).
func toolsModuleDir(tools, module string) string {
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module)
	cmd.Dir = filepath.Join(localkube.RepoRoot(), "hack", "tools", tools)
	out, err := cmd.Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// splitYAML splits a multi-document YAML stream, dropping empty documents.
func splitYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, d := range bytes.Split(append([]byte("\n"), b...), []byte("\n---")) {
		if len(bytes.TrimSpace(d)) > 0 {
			docs = append(docs, append(bytes.TrimLeft(d, "\n"), '\n'))
		}
	}
	return docs
}
