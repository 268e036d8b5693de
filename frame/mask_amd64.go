//go:build amd64 && !purego

package frame

import "golang.org/x/sys/cpu"

// supportedKernels lists the kernels this CPU and OS can run, slowest first.
// x/sys/cpu reports AVX2 and AVX-512 only when the OS also saves the YMM and
// ZMM/opmask registers.
var supportedKernels = func() []maskKernel {
	ks := []maskKernel{kernelGeneric}
	if cpu.X86.HasAVX2 {
		ks = append(ks, kernelAVX2)
	}
	// Mask hands the AVX-512 kernel only 64 bytes or more; shorter
	// payloads go to the AVX2 one.
	if cpu.X86.HasAVX2 && cpu.X86.HasAVX512F {
		ks = append(ks, kernelAVX512)
	}
	return ks
}()

// maskAVX512 XORs b with key repeated, key's low byte going with b[0]. It
// needs AVX512F and len(b) >= 64.
//
//go:noescape
func maskAVX512(b []byte, key uint32)

// maskAVX2 XORs b with key repeated, key's low byte going with b[0]. It
// needs AVX2 and len(b) >= 16.
//
//go:noescape
func maskAVX2(b []byte, key uint32)
