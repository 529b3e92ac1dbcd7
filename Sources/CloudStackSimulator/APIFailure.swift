/// A CloudStack API error as the management server reports it: `ServerApiException`
/// serialized through `ExceptionResponse` (apache/cloudstack ApiServer.java
/// `getSerializedApiError`), with the HTTP status equal to `errorcode`.
struct APIFailure: Error, Sendable {
    var errorCode: Int
    /// `CSExceptionErrorCode`: 4350 for InvalidParameterValueException, 9999 for a bare
    /// ServerApiException. Absent on the servlet's own 401.
    var csErrorCode: Int?
    var errorText: String
    /// UNSUPPORTED_ACTION_ERROR replies use `errorresponse` instead of `<cmd>response`.
    var usesErrorResponseKey: Bool = false

    func body() -> JSONValue {
        .object([
            ("uuidList", .array([])),
            ("errorcode", .int(errorCode)),
            ("cserrorcode", csErrorCode.map { .int($0) }),
            ("errortext", .string(errorText)),
        ])
    }
}

/// `org.apache.cloudstack.api.ApiErrorCode` values the simulator uses.
enum APIErrorCode {
    static let unauthorized = 401
    static let apiLimitExceeded = 429
    static let paramError = 431
    static let unsupportedAction = 432
    static let internalError = 530
    static let insufficientCapacity = 533
}

/// `com.cloud.utils.exception.CSExceptionErrorCode` values.
enum CSErrorCode {
    static let invalidParameterValue = 4350
    static let serverAPIException = 9999
}

extension APIFailure {
    /// ApiServlet.java, when `verifyRequest` returns false (bad or missing signature,
    /// unknown apikey, expired `expires`).
    static let signatureRejected = APIFailure(
        errorCode: APIErrorCode.unauthorized,
        csErrorCode: nil,
        errorText: "unable to verify user credentials and/or request signature"
    )

    /// ParamProcessWorker.java `processParameters`, for a required parameter that is absent.
    static func missingParameter(command: String, parameter: String) -> APIFailure {
        APIFailure(
            errorCode: APIErrorCode.paramError,
            csErrorCode: CSErrorCode.serverAPIException,
            errorText: "Unable to execute API command \(command.lowercased()) due to missing parameter \(parameter)"
        )
    }

    /// ParamProcessWorker.java `translateUuidToInternalId`, wrapped by `processParameters`:
    /// a UUID parameter naming nothing that exists (removed entities still resolve).
    static func unknownEntity(command: String, parameter: String, value: String) -> APIFailure {
        APIFailure(
            errorCode: APIErrorCode.paramError,
            csErrorCode: CSErrorCode.serverAPIException,
            errorText: "Unable to execute API command \(command.lowercased()) due to invalid value. Invalid parameter \(parameter) value=\(value)"
                + " due to incorrect long value format, or entity does not exist or due to incorrect parameter annotation for the field in api cmd class."
        )
    }

    /// An `InvalidParameterValueException` thrown by a service (VolumeApiServiceImpl):
    /// ApiServer.handleRequest wraps it as PARAM_ERROR keeping its cserrorcode 4350.
    static func invalidParameter(_ text: String) -> APIFailure {
        APIFailure(errorCode: APIErrorCode.paramError, csErrorCode: CSErrorCode.invalidParameterValue, errorText: text)
    }

    /// ApiServer.handleRequest for a command it has no class for.
    static func unknownCommand(_ command: String) -> APIFailure {
        APIFailure(
            errorCode: APIErrorCode.unsupportedAction,
            csErrorCode: CSErrorCode.serverAPIException,
            errorText: "Unknown API command: \(command)",
            usesErrorResponseKey: true
        )
    }

    /// What a non-admin sees for an unexpected server failure (BaseCmd.USER_ERROR_MESSAGE);
    /// used for injected faults.
    static func injected(errorCode: Int) -> APIFailure {
        APIFailure(
            errorCode: errorCode,
            csErrorCode: CSErrorCode.serverAPIException,
            errorText: "Internal error executing command, please contact your system administrator"
        )
    }
}
