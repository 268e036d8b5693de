package tlsrec

// CountRecords counts the whole TLS records at the start of stream, of any
// content type, and returns how many bytes of stream follow the last of
// them: a record cut short, or nothing.
func CountRecords(stream []byte) (records, rest int) {
	for len(stream) >= HeaderLen {
		size := HeaderLen + (int(stream[3])<<8 | int(stream[4]))
		if len(stream) < size {
			break
		}
		stream = stream[size:]
		records++
	}
	return records, len(stream)
}
