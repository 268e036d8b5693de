package frame_test

import (
	"testing"

	"github.com/wskit/wskit/frame"
)

// TestOpcodeClasses states RFC 6455 §5.2 for each of the 16 opcode values
// on its own, so that a change to the bit tricks in opcode.go shows up here.
func TestOpcodeClasses(t *testing.T) {
	tests := []struct {
		op       frame.Opcode
		name     string
		control  bool
		reserved bool
	}{
		{op: 0x0, name: "continuation"},
		{op: 0x1, name: "text"},
		{op: 0x2, name: "binary"},
		{op: 0x3, name: "reserved(0x3)", reserved: true},
		{op: 0x4, name: "reserved(0x4)", reserved: true},
		{op: 0x5, name: "reserved(0x5)", reserved: true},
		{op: 0x6, name: "reserved(0x6)", reserved: true},
		{op: 0x7, name: "reserved(0x7)", reserved: true},
		{op: 0x8, name: "close", control: true},
		{op: 0x9, name: "ping", control: true},
		{op: 0xA, name: "pong", control: true},
		{op: 0xB, name: "reserved(0xb)", control: true, reserved: true},
		{op: 0xC, name: "reserved(0xc)", control: true, reserved: true},
		{op: 0xD, name: "reserved(0xd)", control: true, reserved: true},
		{op: 0xE, name: "reserved(0xe)", control: true, reserved: true},
		{op: 0xF, name: "reserved(0xf)", control: true, reserved: true},
	}
	if len(tests) != 16 {
		t.Fatalf("table has %d opcodes, want all 16", len(tests))
	}
	for i, tc := range tests {
		if int(tc.op) != i {
			t.Fatalf("table row %d holds opcode %#x: rows must be in order", i, tc.op)
		}
		if got := tc.op.IsControl(); got != tc.control {
			t.Errorf("Opcode(%#x).IsControl() = %v, want %v", byte(tc.op), got, tc.control)
		}
		if got := tc.op.IsData(); got != !tc.control {
			t.Errorf("Opcode(%#x).IsData() = %v, want %v", byte(tc.op), got, !tc.control)
		}
		if got := tc.op.IsReserved(); got != tc.reserved {
			t.Errorf("Opcode(%#x).IsReserved() = %v, want %v", byte(tc.op), got, tc.reserved)
		}
		if got := tc.op.String(); got != tc.name {
			t.Errorf("Opcode(%#x).String() = %q, want %q", byte(tc.op), got, tc.name)
		}
	}
}

// TestOpcodeConstants pins the named opcodes to their RFC 6455 values.
func TestOpcodeConstants(t *testing.T) {
	tests := []struct {
		op   frame.Opcode
		want byte
	}{
		{frame.OpContinuation, 0x0},
		{frame.OpText, 0x1},
		{frame.OpBinary, 0x2},
		{frame.OpClose, 0x8},
		{frame.OpPing, 0x9},
		{frame.OpPong, 0xA},
	}
	for _, tc := range tests {
		if byte(tc.op) != tc.want {
			t.Errorf("%v = %#x, want %#x", tc.op, byte(tc.op), tc.want)
		}
	}
}
