// Command function is the container entry point of pinroll's Cloud Run
// functions (SPEC §4.5): it serves the target named by $FUNCTION_TARGET, one
// of those package function registers, on $PORT (default 8080) with the
// Functions Framework for Go
// (https://pkg.go.dev/github.com/GoogleCloudPlatform/functions-framework-go/funcframework).
package main

import (
	"log"
	"os"

	"github.com/GoogleCloudPlatform/functions-framework-go/funcframework"

	_ "github.com/pinroll/pinroll/function" // registers the targets
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "8080"
	}
	if err := funcframework.Start(port); err != nil {
		log.Fatalf("pinroll function: serve %s on port %s: %v", os.Getenv("FUNCTION_TARGET"), port, err)
	}
}
