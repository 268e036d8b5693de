package frame

// Mask XORs b in place with key, as RFC 6455 §5.3 masks and unmasks payloads. pos is the
// number of payload bytes already processed before b (only pos%4 matters), so a payload
// can be masked chunk by chunk. It returns the position after b, for the next chunk.
func Mask(b []byte, key [4]byte, pos int) int {
	for i := range b {
		b[i] ^= key[(pos+i)&3]
	}
	return pos + len(b)
}
