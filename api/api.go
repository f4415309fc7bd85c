// Package api holds the OpenAPI 3.1 document of the service's HTTP API,
// embedded so that the binary serves the document it was built with.
package api

import _ "embed"

// OpenAPI is the OpenAPI 3.1 document, in YAML. It is read-only.
//
//go:embed openapi.yaml
var OpenAPI []byte
