// Status and Result<T>: how an operation below the RPC layer says it failed. The code is one of
// the socket API's codes (common/errors.h), so handlers turn a failure into a JSON-RPC error in one
// place (ThrowIfError / RpcErrorOf) and nothing below them throws RpcError.
#pragma once

#include "common/errors.h"

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace ralph {

/// Failures of a request to the opencode server (daemon/opencode_client.h). They are no codes of
/// the socket API: RpcErrorOf turns them into SERVER_UNAVAILABLE.
enum UpstreamCode : int {
    kUpstreamUnreachable = -33001,  ///< no connection (refused, reset, bad address)
    kUpstreamTimeout = -33002,      ///< no answer within the request's deadline
    kUpstreamHttpError = -33003,    ///< an answer other than 2xx; http_status() says which
    kUpstreamBadReply = -33004,     ///< a 2xx answer that is not what the endpoint promises
};
inline bool IsUpstreamCode(int code) { return code <= kUpstreamUnreachable && code > kUpstreamUnreachable - 100; }

class [[nodiscard]] Status {
public:
    Status() = default;  ///< success
    Status(int code, std::string message) : code_(code), message_(std::move(message)) { assert(code != 0); }
    /// A failure that came with an HTTP status (kUpstreamHttpError, kUpstreamBadReply).
    Status(int code, std::string message, int http_status) : Status(code, std::move(message)) { http_status_ = http_status; }

    static Status Ok() { return {}; }
    bool ok() const { return code_ == 0; }
    explicit operator bool() const { return ok(); }
    /// An RpcCode (common/errors.h); 0 when ok.
    int code() const { return code_; }
    /// What went wrong and what to do, ready for a user; empty when ok.
    const std::string& message() const { return message_; }
    /// The HTTP status of an upstream answer that failed; 0 when there was none.
    int http_status() const { return http_status_; }

private:
    int code_{0};
    std::string message_;
    int http_status_{0};
};

/// A value or the Status that says why there is none.
template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}
    Result(Status error) : v_(std::move(error)) { assert(!std::get<Status>(v_).ok()); }

    bool ok() const { return std::holds_alternative<T>(v_); }
    explicit operator bool() const { return ok(); }
    T& value() { assert(ok()); return std::get<T>(v_); }
    const T& value() const { assert(ok()); return std::get<T>(v_); }
    T& operator*() { return value(); }
    const T& operator*() const { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    /// The failure; Status::Ok() when there is a value.
    Status status() const { return ok() ? Status() : std::get<Status>(v_); }

private:
    std::variant<T, Status> v_;
};

/// The one mapping from a Status to a JSON-RPC error, for handlers.
inline RpcError RpcErrorOf(const Status& s)
{
    if (IsUpstreamCode(s.code())) return RpcError(kServerUnavailable, s.message());
    return RpcError(s.code() ? s.code() : kInternalError, s.message());
}
inline void ThrowIfError(const Status& s)
{
    if (!s.ok()) throw RpcErrorOf(s);
}
template <typename T>
T ValueOrThrow(Result<T> r)
{
    if (!r.ok()) throw RpcErrorOf(r.status());
    return std::move(r.value());
}

}  // namespace ralph
