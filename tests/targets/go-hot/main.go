// tests/targets/go-hot -- a Go program for cprofd to profile natively: one goroutine
// burns CPU in hotLeaf called from hotLoop, another sleeps in a channel receive. Go's
// linker writes .debug_frame and DWARF without .debug_aranges and no .eh_frame.
package main

import (
	"fmt"
	"math"
	"os"
)

//go:noinline
func hotLeaf(x float64) float64 {
	s := 0.0
	for i := 0; i < 1000; i++ {
		s += math.Sqrt(x + float64(i))
	}
	return s
}

//go:noinline
func hotLoop() float64 {
	s := 0.0
	for i := 0; i < 1000; i++ {
		s += hotLeaf(float64(i))
	}
	return s
}

func main() {
	fmt.Printf("ready %d\n", os.Getpid())
	var t float64
	for {
		t += hotLoop()
		if t < 0 {
			break
		}
	}
	fmt.Println(t)
}
