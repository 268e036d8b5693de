//go:build amd64 && !purego

#include "textflag.h"

// All kernels take a key already rotated so that byte 0 of b is XORed with
// the key's low byte (little-endian), and XOR b in place.
//
// To avoid byte-at-a-time head and tail loops they use overlapping vectors:
// the first and the last vector of b are loaded and XORed (from the original
// bytes) before anything is stored, the middle is processed in vectors
// aligned to the vector size, and the first and last vectors are stored
// last. Where they overlap the middle they write the very bytes the middle
// already wrote, because every copy was computed from the original input
// with the key rotated to its own offset. Aligning the middle matters: on
// the AMD Zen 5 this was tuned on, unaligned 64-byte vectors were about 30%
// slower at 16 KiB when b did not start on a 64-byte boundary.

// func maskAVX512(b []byte, key uint32)
//
// Needs AVX512F. len(b) must be at least 64. The middle loop does four
// 64-byte vectors per iteration; eight were no faster.
TEXT ·maskAVX512(SB), NOSPLIT, $0-28
	MOVQ b_base+0(FP), DI
	MOVQ b_len+8(FP), BX
	MOVL key+24(FP), AX
	LEAQ (DI)(BX*1), SI // end of b
	VPBROADCASTD AX, Z0

	// First 64 bytes, key as given.
	VPXORD (DI), Z0, Z1

	// Last 64 bytes start at offset len-64, which is len mod 4 in the key.
	MOVL  BX, CX
	ANDL  $3, CX
	SHLL  $3, CX
	MOVL  AX, DX
	RORL  CX, DX
	VPBROADCASTD DX, Z2
	VPXORD -64(SI), Z2, Z2

	// Middle: R9 = first 64-byte boundary after b[0], R10 = last 64-byte
	// boundary at or before the end. len >= 64 makes R9 <= R10.
	LEAQ 64(DI), R9
	ANDQ $-64, R9
	MOVQ SI, R10
	ANDQ $-64, R10
	MOVQ R9, CX
	SUBQ DI, CX
	ANDL $3, CX
	SHLL $3, CX
	RORL CX, AX
	VPBROADCASTD AX, Z3
	MOVQ R10, CX
	SUBQ R9, CX // middle length, a multiple of 64
	CMPQ CX, $256
	JB   tail64

loop256:
	VPXORD    (R9), Z3, Z4
	VPXORD    64(R9), Z3, Z5
	VPXORD    128(R9), Z3, Z6
	VPXORD    192(R9), Z3, Z7
	VMOVDQA64 Z4, (R9)
	VMOVDQA64 Z5, 64(R9)
	VMOVDQA64 Z6, 128(R9)
	VMOVDQA64 Z7, 192(R9)
	ADDQ      $256, R9
	SUBQ      $256, CX
	CMPQ      CX, $256
	JAE       loop256

tail64:
	TESTQ CX, CX
	JZ    ends

loop64:
	VPXORD    (R9), Z3, Z4
	VMOVDQA64 Z4, (R9)
	ADDQ      $64, R9
	SUBQ      $64, CX
	JNZ       loop64

ends:
	VMOVDQU64 Z1, (DI)
	VMOVDQU64 Z2, -64(SI)
	VZEROUPPER
	RET

// func maskAVX2(b []byte, key uint32)
//
// Needs AVX2. len(b) must be at least 16. The middle loop does four 32-byte
// vectors per iteration; eight were no faster.
TEXT ·maskAVX2(SB), NOSPLIT, $0-28
	MOVQ b_base+0(FP), DI
	MOVQ b_len+8(FP), BX
	MOVL key+24(FP), AX
	LEAQ (DI)(BX*1), SI // end of b
	MOVD AX, X0
	VPBROADCASTD X0, Y0

	// Key for the last vector: its offset is len-32 or len-16, both len
	// mod 4 in the key.
	MOVL BX, CX
	ANDL $3, CX
	SHLL $3, CX
	MOVL AX, DX
	RORL CX, DX
	MOVD DX, X2
	VPBROADCASTD X2, Y2

	CMPQ BX, $32
	JB   short

	VPXOR (DI), Y0, Y1
	VPXOR -32(SI), Y2, Y2

	LEAQ 32(DI), R9
	ANDQ $-32, R9
	MOVQ SI, R10
	ANDQ $-32, R10
	MOVQ R9, CX
	SUBQ DI, CX
	ANDL $3, CX
	SHLL $3, CX
	RORL CX, AX
	MOVD AX, X3
	VPBROADCASTD X3, Y3
	MOVQ R10, CX
	SUBQ R9, CX // middle length, a multiple of 32
	CMPQ CX, $128
	JB   tail32

loop128:
	VPXOR   (R9), Y3, Y4
	VPXOR   32(R9), Y3, Y5
	VPXOR   64(R9), Y3, Y6
	VPXOR   96(R9), Y3, Y7
	VMOVDQA Y4, (R9)
	VMOVDQA Y5, 32(R9)
	VMOVDQA Y6, 64(R9)
	VMOVDQA Y7, 96(R9)
	ADDQ    $128, R9
	SUBQ    $128, CX
	CMPQ    CX, $128
	JAE     loop128

tail32:
	TESTQ CX, CX
	JZ    ends

loop32:
	VPXOR   (R9), Y3, Y4
	VMOVDQA Y4, (R9)
	ADDQ    $32, R9
	SUBQ    $32, CX
	JNZ     loop32

ends:
	VMOVDQU Y1, (DI)
	VMOVDQU Y2, -32(SI)
	VZEROUPPER
	RET

short:
	// 16 <= len < 32: two overlapping 16-byte vectors.
	VMOVDQU (DI), X1
	VMOVDQU -16(SI), X4
	VPXOR   X0, X1, X1
	VPXOR   X2, X4, X4
	VMOVDQU X1, (DI)
	VMOVDQU X4, -16(SI)
	VZEROUPPER
	RET
