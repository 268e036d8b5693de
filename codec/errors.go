package codec

import "errors"

// ErrReleased is returned by a Decoder, Assembler or Protocol used after Release.
var ErrReleased = errors.New("wskit: codec used after release")
