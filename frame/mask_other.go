//go:build !amd64 || purego

package frame

// supportedKernels lists the kernels this build can run, slowest first.
var supportedKernels = []maskKernel{kernelGeneric}

// The assembly kernels exist only on amd64; Mask never calls these.

func maskAVX512(b []byte, key uint32) { panic("frame: no AVX-512 kernel in this build") }

func maskAVX2(b []byte, key uint32) { panic("frame: no AVX2 kernel in this build") }
