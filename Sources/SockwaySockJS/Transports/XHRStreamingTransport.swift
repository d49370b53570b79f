extension SockJSTransport {
    /// `POST /<server>/<session>/xhr_streaming`: one long response, a frame per line, ended after the
    /// response limit so that the browser can free what it has buffered.
    public static let xhrStreaming = SockJSTransport(
        name: "xhr-streaming",
        pathSuffix: "xhr_streaming",
        method: "POST",
        role: .receiver(.streaming),
        contentType: "application/javascript; charset=UTF-8",
        wrapping: .newline,
        answersPreflight: true,
        cors: true,
        needsCallback: false
    )
}

enum XHRStreamingPrelude {
    /// Old IE's XHR delivers nothing of a streaming response until it has 2 KiB, hence 2048 `h` bytes.
    static let text = String(repeating: "h", count: 2048) + "\n"
}
