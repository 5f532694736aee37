"""The web page (Gradio): upload an image or a DICOM/NIfTI study, pick a window, and chat about it in
Chinese, turn after turn, under a visible research-use-only notice.

Each browser session keeps its own picture and conversation in Gradio state; answers stream from the
shared Engine, whose feature cache encodes each picture once however long the chat runs.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from qilin_med_vl.errors import QilinError
from qilin_med_vl.imaging.reasons import WINDOW_NOT_APPLICABLE, ImageRejected
from qilin_med_vl.infer.conversation import Conversation
from qilin_med_vl.infer.engine import Engine, SamplingSettings
from qilin_med_vl.infer.images import AUTO_WINDOW, StudyOptions, load_image_source, window_choices

TITLE = "Qilin-Med-VL 医学影像问答 · Medical image chat"
DISCLAIMER = (
    "**仅供科研使用，不得用于临床诊断或治疗决策。** 模型的回答可能有误，请由具备资质的医生判断。\n\n"
    "**Research use only. Not for clinical diagnosis or treatment decisions.** "
    "The model's answers may be wrong; a qualified clinician must decide."
)
QUESTION_HINT = "用中文提问，例如：这张图像显示了什么？"
RASTER_WINDOW_NOTE = "窗宽窗位仅用于 DICOM/NIfTI · the window applies to DICOM/NIfTI only"
NO_IMAGE_NOTE = "尚未上传影像 · No image yet (text-only chat)"


def describe(study) -> str:
    facts = " · ".join(f"{key}: {value}" for key, value in study.description.items())
    return f"已载入 Loaded — {facts}"


def build_page(engine: Engine, settings: SamplingSettings, max_pixels: int) -> gr.Blocks:
    """The page as a Gradio Blocks app (launch it, or mount it in another app)."""

    def load(file_path, window):
        """A new picture starts a new conversation; the window applies to DICOM/NIfTI only."""
        if not file_path:
            return Conversation(), None, NO_IMAGE_NOTE, []
        note = ""
        shown_name = Path(file_path).name  # the upload's own name, never the server's temporary path
        try:
            try:
                study = load_image_source(file_path, StudyOptions(window=window), max_pixels, shown_name)
            except ImageRejected as error:
                if error.reason != WINDOW_NOT_APPLICABLE:
                    raise
                study = load_image_source(file_path, StudyOptions(), max_pixels, shown_name)
                note = f" ({RASTER_WINDOW_NOTE})"
        except QilinError as error:
            raise gr.Error(f"无法读取影像 Cannot read the image: {error}") from None
        return Conversation(image=study.image), study.image, describe(study) + note, []

    def ask(question, conversation: Conversation, history):
        question = (question or "").strip()
        if not question:
            yield "", conversation, history
            return
        history = [*history, {"role": "user", "content": question}, {"role": "assistant", "content": ""}]
        yield "", conversation, history
        answer = ""
        try:
            for piece in engine.stream(conversation.messages(question), settings):
                answer += piece
                history[-1] = {"role": "assistant", "content": answer}
                # leave the question box alone while streaming: the user may be typing the next question
                yield gr.update(), conversation, history
        except QilinError as error:  # e.g. the conversation outgrew the model's context
            raise gr.Error(f"无法回答 Cannot answer: {error}") from None
        conversation.record(question, answer)
        yield gr.update(), conversation, history

    def reset(conversation: Conversation):
        conversation.reset()
        return conversation, []

    with gr.Blocks(title=TITLE, analytics_enabled=False) as page:
        conversation = gr.State(Conversation())
        gr.Markdown(f"# {TITLE}")
        gr.Markdown(DISCLAIMER, elem_id="disclaimer")
        with gr.Row():
            with gr.Column(scale=2):
                upload = gr.File(
                    label="上传影像 Upload image / DICOM / NIfTI", type="filepath", elem_id="upload"
                )
                window = gr.Dropdown(
                    choices=window_choices(),
                    value=AUTO_WINDOW,
                    label="窗宽窗位 Window (DICOM / NIfTI)",
                    elem_id="window",
                )
                preview = gr.Image(label="预览 Preview", interactive=False, elem_id="preview", height=280)
                facts = gr.Markdown(NO_IMAGE_NOTE, elem_id="facts")
            with gr.Column(scale=3):
                chatbot = gr.Chatbot(label="对话 Conversation", elem_id="chat", height=420)
                question = gr.Textbox(
                    label="问题 Question", placeholder=QUESTION_HINT, elem_id="question", lines=2
                )
                with gr.Row():
                    send = gr.Button("发送 Send", variant="primary", elem_id="send")
                    clear = gr.Button("新对话 New conversation", elem_id="reset")

        upload.change(load, [upload, window], [conversation, preview, facts, chatbot])
        window.change(load, [upload, window], [conversation, preview, facts, chatbot])
        send.click(ask, [question, conversation, chatbot], [question, conversation, chatbot])
        question.submit(ask, [question, conversation, chatbot], [question, conversation, chatbot])
        clear.click(reset, [conversation], [conversation, chatbot])
    return page
