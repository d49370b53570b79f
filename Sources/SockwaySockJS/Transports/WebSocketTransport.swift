extension SockJSTransport {
    /// `GET /<server>/<session>/websocket`: SockJS framing over a WebSocket. Unlike the HTTP transports the
    /// session lives exactly as long as the connection, so two connections may share a session id.
    public static let webSocket = SockJSTransport(
        name: "websocket",
        pathSuffix: "websocket",
        method: "GET",
        role: .webSocket,
        contentType: nil,
        wrapping: .webSocket,
        answersPreflight: false,
        cors: false,
        needsCallback: false
    )
}
