"""The console's message catalogue: Vietnamese (the default) and English. The language is the
``lt_lang`` cookie's (set by the language switch), else the first of ``Accept-Language`` that the
console speaks, else Vietnamese."""

from __future__ import annotations

from collections.abc import Callable

from starlette.requests import Request

LANGUAGES = ("vi", "en")
LANG_COOKIE = "lt_lang"

# key: (Vietnamese, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "app": ("Liên thông văn bản", "Document exchange"),
    "skip": ("Bỏ qua, đến nội dung chính", "Skip to the main content"),
    "language": ("Ngôn ngữ", "Language"),
    "sign_in": ("Đăng nhập", "Sign in"),
    "sign_out": ("Đăng xuất", "Sign out"),
    "username": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "sign_in_refused": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong user name or password."),
    "too_many": ("Quá nhiều lần đăng nhập sai; thử lại sau.", "Too many failed sign-ins; try again later."),
    "agency_inactive": ("Cơ quan đang bị tạm dừng.", "The agency is suspended."),
    "session_expired": ("Phiên làm việc đã hết hạn; xin đăng nhập lại.", "Your session ended; please sign in again."),
    "csrf_failed": ("Biểu mẫu đã hết hạn; xin thử lại.", "The form expired; please try again."),
    "forbidden": ("Bạn không có quyền xem trang này.", "You may not see this page."),
    "not_found": ("Không tìm thấy.", "Not found."),
    "error": ("Có lỗi", "Something went wrong"),
    "inbox": ("Văn bản đến", "Received"),
    "sent": ("Văn bản đi", "Sent"),
    "send": ("Gửi văn bản", "Send a document"),
    "search": ("Tra cứu", "Search"),
    "filter": ("Lọc", "Filter"),
    "status": ("Trạng thái", "Status"),
    "any": ("Tất cả", "Any"),
    "overdue": ("Quá hạn", "Overdue"),
    "overdue_only": ("Chỉ văn bản quá hạn", "Overdue only"),
    "type": ("Loại văn bản", "Type"),
    "counterpart": ("Cơ quan (mã)", "Agency (code)"),
    "date_from": ("Ban hành từ ngày", "Promulgated from"),
    "date_to": ("đến ngày", "to"),
    "number": ("Số, ký hiệu", "Number and notation"),
    "code_number": ("Số", "Number"),
    "code_notation": ("Ký hiệu", "Notation"),
    "subject": ("Trích yếu", "Subject"),
    "sender": ("Nơi gửi", "Sender"),
    "received_at": ("Ngày nhận", "Received"),
    "sent_at": ("Ngày gửi", "Sent"),
    "recipients": ("Nơi nhận", "Recipients"),
    "recipient_codes": (
        "Mã định danh nơi nhận (cách nhau bởi dấu phẩy hoặc khoảng trắng)",
        "Recipients' agency codes (separated by commas or spaces)",
    ),
    "groups": ("Nhóm nơi nhận", "Recipient groups"),
    "promulgation_date": ("Ngày ban hành", "Promulgation date"),
    "promulgation_place": ("Nơi ban hành", "Place of promulgation"),
    "signer_position": ("Chức vụ người ký", "Signer's position"),
    "signer_name": ("Họ tên người ký", "Signer's name"),
    "urgency": ("Độ khẩn", "Urgency"),
    "due_date": ("Hạn xử lý", "Due date"),
    "files": ("Tệp đính kèm", "Attachments"),
    "no_items": ("Không có văn bản nào.", "No documents."),
    "next_page": ("Trang sau", "Next page"),
    "document": ("Văn bản", "Document"),
    "signature": ("Chữ ký số", "Digital signature"),
    "no_signature_check": ("Chưa kiểm tra chữ ký", "Signature not checked"),
    "deliveries": ("Tình trạng nơi nhận", "Recipients' status"),
    "history": ("Lịch sử", "History"),
    "report_status": ("Cập nhật trạng thái", "Report a status"),
    "note": ("Ghi chú (bắt buộc khi từ chối)", "Note (required to reject)"),
    "note_short": ("Ghi chú", "Note"),
    "save": ("Lưu", "Save"),
    "recall": ("Thu hồi", "Recall"),
    "recall_reason": ("Lý do thu hồi", "Reason for the recall"),
    "update": ("Cập nhật", "Update"),
    "replace": ("Thay thế", "Replace"),
    "kind_name_new": ("Văn bản mới", "New"),
    "kind_name_update": ("Cập nhật", "Update"),
    "kind_name_replace": ("Thay thế", "Replacement"),
    "kind_update": ("Văn bản cập nhật", "Update of"),
    "kind_replace": ("Văn bản thay thế", "Replacement of"),
    "status_reported": ("Đã cập nhật trạng thái.", "Status reported."),
    "document_sent": ("Đã gửi văn bản.", "Document sent."),
    "recall_requested": ("Đã yêu cầu thu hồi.", "Recall requested."),
    "query": ("Từ khóa (không cần dấu)", "Words (diacritics optional)"),
    "results": ("Kết quả", "Results"),
    "admin": ("Quản trị", "Administration"),
    "agencies": ("Cơ quan", "Agencies"),
    "agency": ("Cơ quan", "Agency"),
    "code": ("Mã định danh", "Agency code"),
    "name": ("Tên", "Name"),
    "level": ("Cấp", "Level"),
    "parent": ("Cơ quan cấp trên (mã)", "Parent agency (code)"),
    "children": ("Cơ quan trực thuộc", "Agencies under it"),
    "create_agency": ("Thêm cơ quan", "Add an agency"),
    "agency_created": ("Đã thêm cơ quan.", "Agency added."),
    "clients": ("Tài khoản kết nối (API)", "API clients"),
    "client_name": ("Tên hệ thống", "System name"),
    "role": ("Vai trò", "Role"),
    "issue_client": ("Cấp tài khoản kết nối", "Issue an API client"),
    "client_issued": (
        "Đã cấp tài khoản. Mật khẩu chỉ hiển thị một lần:",
        "Client issued. The secret is shown this once:",
    ),
    "rotate": ("Đổi mật khẩu", "Rotate"),
    "revoke": ("Thu hồi", "Revoke"),
    "revoked": ("Đã thu hồi", "Revoked"),
    "in_use": ("Đang dùng", "In use"),
    "saved": ("Đã lưu.", "Saved."),
    "hierarchy": ("Sơ đồ tổ chức", "Hierarchy"),
    "change_status": ("Đổi trạng thái", "Change the status"),
    "reason": ("Lý do", "Reason"),
    "successor": ("Cơ quan kế thừa (mã, khi giải thể/sáp nhập)", "Successor (code, when retiring)"),
    "mode": ("Phương thức", "Mode"),
    "webhook_url": ("Địa chỉ webhook (https)", "Webhook URL (https)"),
    "amqp_queue": ("Hàng đợi trên trục LGSP", "Queue on the provincial bus"),
    "webhook_secret_shown": ("Khóa ký webhook, chỉ hiển thị một lần:", "The webhook signing secret, shown this once:"),
    "disable": ("Khóa", "Disable"),
    "enable": ("Mở khóa", "Enable"),
    "new_password": ("Mật khẩu mới", "New password"),
    "set_password": ("Đặt mật khẩu", "Set the password"),
    "create_group": ("Thêm nhóm", "Add a group"),
    "group_name": ("Mã nhóm (chữ thường, số, -)", "Group name (lower case, digits, -)"),
    "group_title": ("Tên nhóm", "Title"),
    "group_members": ("Thành viên (mã định danh)", "Members (agency codes)"),
    "rule_level": ("Quy tắc: mọi cơ quan ở cấp", "Rule: every agency at level"),
    "rule_under": ("Quy tắc: thuộc cơ quan (mã)", "Rule: under agency (code)"),
    "add_certificate": ("Thêm chứng thư CA", "Add a CA certificate"),
    "certificate_pem": ("Chứng thư (PEM)", "Certificate (PEM)"),
    "kind": ("Loại", "Kind"),
    "seal": ("Con dấu của cơ quan", "The agency's seal"),
    "signer": ("Người ký", "A signer"),
    "add_agency_certificate": ("Thêm chứng thư số", "Add a certificate"),
    "version": ("Phiên bản", "Version"),
    "roots": ("Chứng thư gốc", "Roots"),
    "intermediates": ("Chứng thư trung gian", "Intermediates"),
    "revocation_mode": ("Chế độ kiểm tra thu hồi", "Revocation mode"),
    "cert_subject": ("Chủ thể", "Subject"),
    "issuer": ("Tổ chức cấp", "Issuer"),
    "valid_until": ("Hiệu lực đến", "Valid until"),
    "this_update": ("Ngày phát hành", "This update"),
    "next_update": ("Lần cập nhật tới", "Next update"),
    "revoked_count": ("Số chứng thư bị thu hồi", "Revoked certificates"),
    "confirm_revoke": ("Thu hồi ngay tài khoản kết nối", "Revoke at once the API client"),
    "confirm_recall": ("Yêu cầu mọi nơi nhận trả lại văn bản này?", "Ask every recipient to give this document back?"),
    "client_rotated": (
        "Đã đổi mật khẩu. Mật khẩu mới chỉ hiển thị một lần:",
        "Rotated. The new secret is shown this once:",
    ),
    "client_revoked": ("Đã thu hồi tài khoản.", "Client revoked."),
    "users": ("Người dùng", "Users"),
    "display_name": ("Họ tên", "Full name"),
    "create_user": ("Thêm người dùng", "Add a user"),
    "user_created": ("Đã thêm người dùng.", "User added."),
    "endpoint": ("Phương thức nhận", "Delivery endpoint"),
    "certificates": ("Chứng thư số", "Certificates"),
    "group_list": ("Nhóm nơi nhận", "Recipient groups"),
    "members": ("Thành viên", "Members"),
    "rules": ("Quy tắc", "Rules"),
    "failed_pushes": ("Gửi webhook thất bại", "Failed webhook pushes"),
    "resend": ("Gửi lại", "Re-send"),
    "resent": ("Đã gửi lại.", "Re-sent."),
    "truststore": ("Kho chứng thư tin cậy", "Trust store"),
    "audit": ("Nhật ký", "Audit trail"),
    "action": ("Hành động", "Action"),
    "actor": ("Người thực hiện", "Actor"),
    "when": ("Thời điểm", "When"),
    "outcome": ("Kết quả", "Outcome"),
    "target": ("Đối tượng", "Target"),
    "statistics": ("Thống kê", "Statistics"),
    "by_level": ("Theo cấp hành chính", "By administrative level"),
    "by_month": ("Theo tháng", "By month"),
    "slowest": ("Cơ quan xử lý chậm nhất", "Slowest agencies"),
    "month": ("Tháng", "Month"),
    "month_from": ("Từ tháng", "From month"),
    "month_to": ("Đến tháng", "To month"),
    "documents_sent": ("Văn bản gửi", "Documents sent"),
    "documents_received": ("Văn bản nhận", "Documents received"),
    "answered_in_time": ("Tỷ lệ xác nhận đúng hạn", "Answered 01 in time"),
    "median_hours": ("Trung vị (giờ)", "Median (hours)"),
    "adoption": ("Tỷ lệ cơ quan hoạt động (30 ngày)", "Agencies active in 30 days"),
    "chart_of": ("Biểu đồ", "Chart"),
    "table_of": ("Bảng số liệu", "Table"),
    "no_statistics": ("Chưa có số liệu.", "No figures yet."),
    "nothing": ("Không có mục nào.", "Nothing here."),
    "yes": ("Có", "Yes"),
    "no": ("Không", "No"),
}

STATUS_NAMES: dict[str, tuple[str, str]] = {
    "pending": ("Chờ xác nhận đến", "Awaiting 01"),
    "01": ("01 Đã đến", "01 Arrived"),
    "02": ("02 Từ chối", "02 Rejected"),
    "03": ("03 Đã tiếp nhận", "03 Accepted"),
    "04": ("04 Đã phân công", "04 Assigned"),
    "05": ("05 Đang xử lý", "05 Processing"),
    "06": ("06 Hoàn thành", "06 Completed"),
    "13": ("13 Yêu cầu thu hồi", "13 Recall requested"),
    "15": ("15 Đồng ý thu hồi", "15 Recall agreed"),
    "16": ("16 Từ chối thu hồi", "16 Recall refused"),
}


def language_of(request: Request) -> str:
    """Return the request's language: the cookie's, else Accept-Language's, else Vietnamese."""
    chosen = request.cookies.get(LANG_COOKIE)
    if chosen in LANGUAGES:
        return chosen
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().lower()[:2]
        if tag in LANGUAGES:
            return tag
    return "vi"


def translator(language: str) -> Callable[[str], str]:
    """Return ``t(key)``: the message in ``language`` (the key itself when the catalogue lacks it)."""
    index = 1 if language == "en" else 0

    def t(key: str) -> str:
        pair = MESSAGES.get(key) or STATUS_NAMES.get(key)
        return pair[index] if pair else key

    return t
