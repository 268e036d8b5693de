// Package wskit is a WebSocket server and client toolkit in the shape of
// Ktor's WebSockets plugin: Options, routes that mount on any net/http mux,
// default sessions that handle control frames for you, raw sessions (package
// wsraw) that hand you every frame, lifecycle callbacks, content converters
// and a client Dial giving the same session type.
//
// The protocol itself lives in package codec (sans-I/O) and package frame
// (the wire format); this package adds the handshake, the transport and the
// session model on top.
//
// # From Ktor
//
//	install(WebSockets) { pingPeriod = 15.seconds }   srv, _ := wskit.NewServer(wskit.Options{PingPeriod: 15 * time.Second})
//	webSocket("/echo") { … }                         mux.Handle("/echo", srv.WebSocket(func(s *wskit.Session) { … }))
//	webSocket("/chat", protocol = "chat") { … }       srv.WebSocket(handler, wskit.Protocols("chat"))
//	webSocketRaw("/raw") { … }                        srv.WebSocketRaw(func(s *wsraw.Session) { … })
//	for (frame in incoming) { … }                     for m := range s.Messages() { … }
//	incoming.receive()                                s.Receive(ctx)
//	send("text"); send(Frame.Binary(true, bytes))     s.SendText("text"); s.SendBinary(bytes)
//	outgoing.send(Frame.Ping(bytes))                  s.SendFrame(frame.Header{Fin: true, Op: frame.OpPing}, bytes)
//	close(CloseReason(NORMAL, "bye"))                 s.Close(wskit.CloseNormal, "bye")
//	closeReason.await()                               <-s.Done(); r, _ := s.CloseReason()
//	call.request                                      s.Request()
//	sendSerialized(v); receiveDeserialized<T>()       wskit.SendValue(s, v); wskit.ReceiveValue[T](ctx, s)
//	client.webSocket("ws://…") { … }                  s, err := wskit.Dial(ctx, "ws://…", nil)
//	extensions { install(WebSocketDeflateExtension) } opts.Extensions = []codec.Extension{&codec.PerMessageDeflate{}}
//	MutableSharedFlow<String>(replay = 1)            hub, _ := wskit.NewHub(wskit.HubOptions{Replay: 1})
//	flow.collect { send(it) }                         hub.Subscribe(s)
//	flow.emit(text)                                   hub.PublishText(ctx, text)
//
// Ktor's onConnect / onMessage / onClose / onError idioms are the Events
// callbacks OnOpen / OnMessage / OnClose / OnError; see Events.
//
// # Lifecycle
//
// A session ends in one of these ways, and CloseReason reports it:
//   - the peer sent a close frame: its code and reason (1005 when it sent
//     none), after our echo;
//   - we closed (Close, or the handler returned: 1000; it panicked: 1011):
//     our code and reason, once the peer answered or Timeout passed;
//   - the peer broke the protocol: the code we closed with (1002, 1007,
//     1009), and Err returns the *frame.ProtocolError;
//   - the connection just ended: 1006 Abnormal Closure, never sent.
//
// Context is cancelled and Done is closed when the session ends.
// CloseNow cuts the connection without the handshake (1006), and CloseRead
// drops what comes for a session that only sends.
//
// # Large messages, deadlines and tunnels
//
// Receive and Send move whole messages. Reader and Writer stream one
// message in pieces, so that a message of any size within MaxMessageSize
// is held a frame at a time. SendContext bounds one send by a context, and
// NetConn turns a session into a net.Conn with deadlines, to carry another
// protocol. SetCompression chooses, at send time, whether
// permessage-deflate compresses the messages that follow.
//
// # Extensions
//
// Options.Extensions are negotiated by both engines and by Dial: the server
// accepts from the client's offer, in install order; Session.Extensions
// reports the result. codec.PerMessageDeflate is RFC 7692 compression;
// codec.Extension and codec.Transform are the interface for extensions of
// your own. Raw sessions never negotiate extensions.
//
// # Broadcast
//
// A Hub is a SharedFlow for sessions: every subscriber receives every
// published message, in publish order, with replay for late subscribers and
// an Overflow policy for slow ones (suspend the publisher, drop the oldest or
// the latest, or close with 1013 or 1008). A message is framed once, and
// compressed once per distinct permessage-deflate configuration, and the
// same bytes are queued to every subscriber; the hub holds no goroutine.
// What slow subscribers make it hold is bounded in messages and in bytes,
// counting each message's payload, encodings and bookkeeping: per
// subscriber (HubOptions.SubscriberBytes, 1 MiB) and per hub, each message
// once (HubOptions.HubBytes, 64 MiB). Topics keeps many hubs by name, such
// as chat rooms.
//
// A hub given a Broker (HubOptions.Broker) spans many servers: a publish
// on any of them goes through the broker, and each server fans out what
// the broker delivers with the same encode-once path, following a topic
// only while it has subscribers to it. Module github.com/wskit/wskit/nats
// implements a Broker on NATS; this module depends on no broker. With
// HubOptions.Stamp each message carries its sequence to the client, which
// gives it back to Hub.SubscribeAfter when it reconnects, to any server, to
// receive what it missed.
//
// # Engines
//
// The same routes and sessions run on two transports, picked by
// Options.Engine when Server.Serve serves a listener:
//
//   - EngineStd: net/http, a goroutine per connection. Routes also mount on
//     an http.Server of your own.
//   - EnginePoll (Linux; the default there): epoll loops from package
//     poller, one per CPU. The loop reads each request head itself and
//     answers upgrades to the server's routes; everything else goes to
//     net/http on the same connection. Events callbacks run on the loop:
//     an idle Events session holds no goroutine and no buffer, about 1 KB
//     in all. Default and raw sessions keep a goroutine each, woken by the
//     loop's readiness instead of the runtime's poller.
//
// Events on the poll engine run on the loop, so they must not block:
// Session.Close returns at once (OnClose reports the end), a send that
// finds the queue over MaxQueue fails with ErrQueueFull under QueueBlock
// instead of waiting, and Options.Workers moves the callbacks to a pool of
// goroutines (in order per session) when they may block.
package wskit
