extension SockJSTransport {
    /// `GET /<server>/<session>/htmlfile?c=callback`: a never-ending HTML page (IE's "htmlfile" ActiveX
    /// trick) whose `<script>` elements hand each frame to `parent.<callback>`.
    public static let htmlFile = SockJSTransport(
        name: "htmlfile",
        pathSuffix: "htmlfile",
        method: "GET",
        role: .receiver(.streaming),
        contentType: "text/html; charset=UTF-8",
        wrapping: .htmlFile,
        answersPreflight: false,
        cors: false,
        needsCallback: true
    )
}

enum HTMLFilePrelude {
    /// Safari renders nothing of a page until it has about 1 KiB, so the head is padded past that.
    static func text(callback: String) -> String {
        let head = """
            <!doctype html>
            <html><head>
              <meta http-equiv="X-UA-Compatible" content="IE=edge" />
              <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
            </head><body><h2>Don't panic!</h2>
              <script>
                document.domain = document.domain;
                var c = parent.\(callback);
                c.start();
                function p(d) {c.message(d);};
                window.onload = function() {c.stop();};
              </script>
            """
        let padding = max(0, 1024 - head.utf8.count)
        return head + String(repeating: " ", count: padding + 1) + "\r\n\r\n"
    }
}
