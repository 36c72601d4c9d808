// Command kubectl-lethe is the kubectl plugin of Lethe (`kubectl lethe`,
// installed by putting the binary on PATH). Its commands are in
// internal/plugin.
package main

import (
	"os"

	"github.com/lethe-dev/lethe/internal/plugin"
)

func main() { os.Exit(plugin.Main()) }
