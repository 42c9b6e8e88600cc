package node

import (
	"os"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/streamrec/streamrec/server"
)

// TestOpenAPIMatchesRoutes keeps api/openapi.yaml true: every route in the
// file exists in the server and every route of the server is in the file.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	b, err := os.ReadFile("../api/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q, want 3.x", doc.OpenAPI)
	}
	var inFile, inServer []string
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options":
				inFile = append(inFile, strings.ToUpper(method)+" "+path)
			}
		}
	}
	for _, r := range server.Routes() {
		inServer = append(inServer, r.Method+" "+r.Pattern)
	}
	inServer = append(inServer, Routes()...)
	sort.Strings(inFile)
	sort.Strings(inServer)
	if strings.Join(inFile, "\n") != strings.Join(inServer, "\n") {
		t.Fatalf("api/openapi.yaml and the server disagree:\nfile:\n%s\n\nserver:\n%s", strings.Join(inFile, "\n"), strings.Join(inServer, "\n"))
	}
}
