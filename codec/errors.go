package codec

import "errors"

// ErrReleased is returned by a Decoder, Assembler or Protocol used after Release.
var ErrReleased = errors.New("websocket: codec used after release")
